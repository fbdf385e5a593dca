"""The shared botocore -> domain error translation of the AWS adapters."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.aws_clients import THROTTLED, LazyClient, error_code, translate
from chalicelib.domain.errors import BatchplaneError, NotFound, StoreUnavailable, Throttled


def client_error(code: str, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Op")


@pytest.mark.parametrize("code", sorted(THROTTLED))
def test_every_throttling_code_is_throttled(code: str) -> None:
    assert isinstance(translate(client_error(code), "Svc Op"), Throttled)


def test_the_service_classifies_its_own_codes_and_the_rest_is_unavailable() -> None:
    def classify(code: str, message: str) -> BatchplaneError | None:
        return NotFound(message) if code == "Gone" else None

    assert isinstance(translate(client_error("Gone", "no such thing"), "Svc Op", classify), NotFound)
    other = translate(client_error("AccessDeniedException"), "Svc Op", classify)
    assert type(other) is StoreUnavailable and str(other) == "Svc Op: AccessDeniedException: boom"


def test_an_error_without_a_code_is_unavailable() -> None:
    e = EndpointConnectionError(endpoint_url="https://x")
    assert error_code(e) == ""
    assert isinstance(translate(e, "Svc Op"), StoreUnavailable)


def test_a_lazy_client_is_built_once_on_first_use() -> None:
    built: list[int] = []
    lazy = LazyClient(lambda: built.append(1) or object())
    assert built == []
    assert lazy.get() is lazy.get()
    assert built == [1]
