"""Container credentials on a real Docker engine: a container on the `batchplane-credentials` network reads its
attempt's credentials at http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, as on ECS, and cannot read
another attempt's even when it knows the URI (docs/adr/0017). Containers are started with docker-py directly.

Skips without an engine (run `bash scripts/docker-up.sh`); fails instead when CI is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from chalicelib.compute.credentials import RELATIVE_URI_VAR, LocalCredentialVendor
from chalicelib.compute.credentials_network import ECS_CREDENTIALS_ADDRESS, NETWORK_NAME
from tests.docker_support import holds_the_credentials_endpoint
from tests.functional.test_credentials import KEY_ID, SECRET, TOKEN, FakeSession, credentials_log, spec

pytestmark = pytest.mark.e2e

IMAGE = "busybox:latest"  # built locally by scripts/docker-up.sh
LABEL = "batchplane.test"  # every container this module starts, removed at teardown
WAIT_S = 30.0
__all__ = ["credentials_log"]  # a fixture


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """A docker-py APIClient of an engine that answers (the launcher branch's `docker_engine` fixture does the same:
    use it once both are merged)."""
    why = None
    try:
        import docker

        client = docker.APIClient(**docker.utils.kwargs_from_env(), timeout=60)
        client.ping()
        client.inspect_image(IMAGE)
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        message = f"no Docker engine answers ({why}); start one with `bash scripts/docker-up.sh`"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the container tests must run: {message}")
        pytest.skip(message)
    yield client
    for c in client.containers(all=True, filters={"label": f"{LABEL}=credentials"}):
        with contextlib.suppress(Exception):
            client.remove_container(c["Id"], force=True)
    client.close()


@pytest.fixture
def vendor(engine: Any) -> Iterator[LocalCredentialVendor]:
    v = LocalCredentialVendor(FakeSession(Credentials(KEY_ID, SECRET, TOKEN)), docker_client=engine)
    v.start()
    try:
        holds_the_credentials_endpoint(v)
        yield v
    finally:
        v.stop()


def start(
    engine: Any, env: dict[str, str], script: str, address: str | None = None, network: str = NETWORK_NAME
) -> str:
    """A busybox container on the credentials network (at `address` if given) running `sh -c script`; its id."""
    networking = None
    if address is not None:
        endpoint = engine.create_endpoint_config(ipv4_address=address)
        networking = engine.create_networking_config({network: endpoint})
    container = engine.create_container(
        IMAGE,
        command=["sh", "-c", script],
        environment=env,
        labels={LABEL: "credentials"},
        host_config=engine.create_host_config(network_mode=network),
        networking_config=networking,
    )
    engine.start(container["Id"])
    return str(container["Id"])


def finish(engine: Any, container: str) -> tuple[int, str]:
    """Its exit code and output, once it ended."""
    code = engine.wait(container, timeout=WAIT_S)["StatusCode"]
    return int(code), engine.logs(container).decode()


def wait_for_output(engine: Any, container: str, text: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while text not in (out := engine.logs(container).decode()):
        assert time.monotonic() < deadline, f"the container never printed {text!r}: {out!r}"
        time.sleep(0.05)
    return out


FETCH = f"wget -qO- http://{ECS_CREDENTIALS_ADDRESS}"  # busybox's wget: exit 1 on an HTTP error


def test_the_network_gateway_is_the_ecs_credentials_address(engine: Any, vendor: LocalCredentialVendor) -> None:
    assert vendor.network == NETWORK_NAME
    [network] = [n for n in engine.networks(names=[NETWORK_NAME]) if n["Name"] == NETWORK_NAME]
    assert [c["Gateway"] for c in network["IPAM"]["Config"]] == [ECS_CREDENTIALS_ADDRESS]


def test_a_container_reads_its_credentials_as_on_ecs(engine: Any, vendor: LocalCredentialVendor) -> None:
    # GIVEN an attempt granted credentials for its container: only the relative URI, as ECS sets it
    env = vendor.grant(spec(job_id="reader"), container=True)
    assert list(env) == [RELATIVE_URI_VAR]

    # WHEN its container fetches http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
    code, out = finish(engine, start(engine, env, f"{FETCH}${RELATIVE_URI_VAR}"))

    # THEN it reads the server's credentials in ECS's shape
    assert code == 0, out
    body = json.loads(out)
    assert (body["AccessKeyId"], body["SecretAccessKey"], body["Token"]) == (KEY_ID, SECRET, TOKEN)
    assert body["RoleArn"] == "arn:aws:iam::123456789012:role/job-role"


def test_a_container_cannot_read_another_attempts_credentials(engine: Any, vendor: LocalCredentialVendor) -> None:
    # GIVEN two attempts' containers on the network, each with its own grant
    env_a = vendor.grant(spec(job_id="victim"), container=True)
    env_b = vendor.grant(spec(job_id="thief"), container=True)
    victim = start(engine, env_a, f"{FETCH}${RELATIVE_URI_VAR} >/dev/null && echo fetched; sleep 30")
    wait_for_output(engine, victim, "fetched")  # the victim read its own: its grant is bound to its address

    # WHEN the other container, which learned the victim's URI, asks for it (and then for its own)
    script = f"{FETCH}{env_a[RELATIVE_URI_VAR]} || echo refused; {FETCH}${RELATIVE_URI_VAR} >/dev/null && echo own"
    code, out = finish(engine, start(engine, env_b, script))

    # THEN the victim's URI is refused to it, and its own answers
    assert code == 0, out
    assert "refused" in out and "own" in out and KEY_ID not in out


def test_a_uri_is_refused_to_a_container_that_does_not_hold_it_even_before_its_owner_asked(
    engine: Any, vendor: LocalCredentialVendor
) -> None:
    # GIVEN an attempt whose container has not fetched its credentials yet
    env_a = vendor.grant(spec(job_id="not-yet"), container=True)

    # WHEN another container asks for its URI first
    env_b = vendor.grant(spec(job_id="early"), container=True)
    code, out = finish(engine, start(engine, env_b, f"{FETCH}{env_a[RELATIVE_URI_VAR]} || echo refused"))

    # THEN it is refused (the container at its address does not hold that URI) ...
    assert code == 0 and "refused" in out and KEY_ID not in out, out
    # ... and the owner still reads it afterwards
    code, out = finish(engine, start(engine, env_a, f"{FETCH}${RELATIVE_URI_VAR}"))
    assert code == 0 and KEY_ID in out, out


def test_a_container_given_the_address_of_an_ended_holder_cannot_read_its_credentials(
    engine: Any, vendor: LocalCredentialVendor
) -> None:
    # GIVEN a container that read its credentials and ended, its grant not yet released (the launcher releases it
    # once the end is recorded)
    address = "169.254.170.201"
    env = vendor.grant(spec(job_id="ended-holder"), container=True)
    first = start(engine, env, f"{FETCH}${RELATIVE_URI_VAR}", address=address)
    assert finish(engine, first)[0] == 0
    engine.remove_container(first, force=True)

    # WHEN a new container gets the same address and asks for that URI
    code, out = finish(engine, start(engine, {}, f"{FETCH}{env[RELATIVE_URI_VAR]} || echo refused", address=address))

    # THEN it is refused: the grant belongs to the container, not to the address
    assert code == 0 and "refused" in out and KEY_ID not in out, out


def test_a_container_off_the_network_is_refused_even_with_the_uri(engine: Any, vendor: LocalCredentialVendor) -> None:
    # GIVEN a container on Docker's default bridge: 169.254.170.2 is a host address, so it can reach the endpoint
    env = vendor.grant(spec(job_id="off-network"), container=True)

    # WHEN it asks for a URI, even one in its own environment
    code, out = finish(engine, start(engine, env, f"{FETCH}${RELATIVE_URI_VAR} || echo refused", network="bridge"))

    # THEN it is refused (by the endpoint: 400): only containers on the credentials network are answered
    assert code == 0 and "refused" in out and "400 Bad Request" in out and KEY_ID not in out, out


def test_a_released_attempts_uri_is_refused_to_its_own_container(engine: Any, vendor: LocalCredentialVendor) -> None:
    env = vendor.grant(spec(job_id="released"), container=True)
    vendor.release("released#1")
    code, out = finish(engine, start(engine, env, f"{FETCH}${RELATIVE_URI_VAR} || echo refused"))
    assert code == 0 and "refused" in out and KEY_ID not in out, out


def test_a_second_vendor_reuses_the_network_and_refuses_containers_while_the_first_holds_the_port(
    engine: Any, vendor: LocalCredentialVendor, credentials_log: pytest.LogCaptureFixture
) -> None:
    # GIVEN a server serving container credentials; WHEN a second one on the same machine starts
    second = LocalCredentialVendor(FakeSession(Credentials(KEY_ID, SECRET, TOKEN)), docker_client=engine)
    second.start()
    try:
        # THEN it finds the network but not the port: its container grants are empty, and it says why
        assert second.network is None
        assert second.grant(spec(job_id="second"), container=True) == {}
        assert "cannot listen on 169.254.170.2:80" in credentials_log.text
        # ... while its host processes still get credentials on their loopback endpoint
        assert second.grant(spec(job_id="second"), container=False)
    finally:
        second.stop()
