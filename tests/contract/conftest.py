"""Every ItemStore adapter runs the same contract tests: add an adapter by adding a param to `store`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.store.port import ItemStore
from chalicelib.store.sqlite import SqliteItemStore


def _sqlite(tmp_path: Path) -> Iterator[ItemStore]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    yield store
    store.close()


def _dynamo(tmp_path: Path) -> Iterator[ItemStore]:
    """DynamoDB in-process under moto: a fresh account (and so a fresh table) per test."""
    from moto import mock_aws

    from chalicelib.store.dynamo import DynamoItemStore

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        # In-process moto does not know botocore's account-based endpoints (stack-findings).
        env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            env.delenv(name, raising=False)
        with mock_aws():
            store = DynamoItemStore("batchplane-test", region="us-east-1")
            store.create_table(wait=True)
            yield store
            store.close()


ADAPTERS = {"sqlite": _sqlite, "dynamo": _dynamo}


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ItemStore]:
    yield from ADAPTERS[request.param](tmp_path)
