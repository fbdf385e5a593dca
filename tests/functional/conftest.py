"""The functional suite: a stock boto3 `batch` client against an in-process batchplane, fresh per test.

Builders (make_fargate_ce, make_queue, make_jd, ...) live in tests/functional/builders.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from app import app
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.functional.builders import REGION, BatchClient
from tests.runtimes import stop_runtime

if TYPE_CHECKING:
    from bench.aws_harness import Deployment

# One attempt in total: a 500 must surface as ServerException, not be retried away. (botocore's `max_attempts`
# counts retries after the first attempt in its default legacy mode, so max_attempts=1 would still retry once.)
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
STOP_TIMEOUT_S = 10.0


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    # Shared so botocore loads the Batch model once per run, not once per test.
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    # No deletion grace: an empty queue or compute environment is gone when its Delete returns, as these tests of
    # the API's shape expect (test_lifecycle_api.py and test_deletion.py cover the grace, docs/adr/0021).
    rt = build_local(LocalConfig(state_dir=tmp_path / "state", port=0, deletion_grace_seconds=0), app)
    rt.start()
    try:
        yield rt
    finally:
        stop_runtime(rt, STOP_TIMEOUT_S)


@pytest.fixture
def endpoint(runtime: LocalRuntime) -> str:
    return runtime.endpoint


@pytest.fixture
def make_client(boto_session: boto3.session.Session, endpoint: str) -> Iterator[Callable[[str], BatchClient]]:
    """Builds more clients on the same server, e.g. for another region."""
    clients: list[BatchClient] = []

    def build(region: str = REGION) -> BatchClient:
        client = boto_session.client("batch", region_name=region, endpoint_url=endpoint, config=CLIENT_CONFIG)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def batch(make_client: Callable[[str], BatchClient]) -> BatchClient:
    return make_client(REGION)


# -- the serverless runtime on moto (bench/aws_harness.py); imported when used: most tests here need none of it ----


@pytest.fixture
def serverless_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the harness's deployment runs in: AWS_ENV set, AWS_ENV_UNSET removed."""
    from bench.aws_harness import AWS_ENV, AWS_ENV_UNSET

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in AWS_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def deployment(serverless_env: None) -> Iterator[Deployment]:
    """The stack deployed on moto, nothing created in it yet (`set_up` adds the harness's queue "q", ...). A module
    needing another deployment overrides this fixture."""
    from bench.aws_harness import deployed

    with deployed() as d:
        yield d


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The serverless e2e test's AWS calls per job, where `make test` shows them (issue 6: it prints the counts)."""
    from tests.functional.call_report import CALL_REPORT

    lines = config.stash.get(CALL_REPORT, None)
    if lines:
        terminalreporter.write_sep("-", "AWS calls per job, serverless e2e on moto (build/serverless-e2e-calls.json)")
        for line in lines[2:]:  # past the blank line and the title
            terminalreporter.write_line(line)
