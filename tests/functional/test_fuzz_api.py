"""Issue 12, item 21: a seeded, bounded fuzz of the whole API, so that "no 5xx, no dropped connection" stays true.

Requests are drawn from botocore's shapes for every operation (tests/functional/fuzz_requests.py), mutated, and sent
as raw HTTP to a real server (a LocalRuntime on 127.0.0.1:0), and the body-level ones also straight through
`api/gateway.handle` / `api/logs_api.handle_logs` (the code the AWS runtime's Lambda runs). For every request:
- an answer arrives (socket timeout: no hang), parseable HTTP (no dropped connection), never a 5xx;
- it carries x-amzn-RequestId; an error carries x-amzn-ErrorType and a JSON body {"__type", "message"} of that type;
- a refused request wrote nothing (the store's items before and after are the same, apart from what the engine
  changes in the background: job states, array children, usage);
a keep-alive connection stays in step (a request in any framing, then a plain one: the second answer is the second
request's); and afterwards the server still answers, and nothing was logged as an unhandled error, in the API or the
engine.

Seeded (derandomize) and bounded for `make test`; BATCHPLANE_FUZZ_EXAMPLES=5000 BATCHPLANE_FUZZ_SEED=<n> runs it
longer with another seed.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from app import app
from chalicelib.api import gateway
from chalicelib.api.logs_api import handle_logs
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.functional.conftest import CLIENT_CONFIG
from tests.functional.fuzz_requests import Call, World, calls, encode_body, mutated, raw_requests
from tests.functional.raw_http import Answer, exchange, exchange_many
from tests.runtimes import stop_runtime

EXAMPLES = int(os.environ.get("BATCHPLANE_FUZZ_EXAMPLES", "0"))
SEED = os.environ.get("BATCHPLANE_FUZZ_SEED")
VOLATILE = ("JOB#", "ARR#", "USAGE#", "DEP#")  # what the engine writes in the background


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    bounded = settings(
        max_examples=EXAMPLES or examples,
        derandomize=SEED is None,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    if SEED is None:
        return bounded
    return lambda fn: seed(int(SEED))(bounded(fn))


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Fuzzed:
    runtime: LocalRuntime
    world: World
    db: Path
    errors: _Errors
    seen: dict[int, int] = field(default_factory=dict)

    def snapshot(self) -> dict[tuple[str, str], int | None]:
        """Every stored item's version; for what the engine changes in the background, only that the top-level
        jobs exist (a refused SubmitJob must not have added one)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT pk, sk, version FROM items").fetchall()
        out: dict[tuple[str, str], int | None] = {}
        for pk, sk, version in rows:
            if not pk.startswith(VOLATILE):
                out[(pk, sk)] = version
            elif pk.startswith("JOB#") and ":" not in pk:
                out[(pk, sk)] = None
        return out

    def alive(self) -> None:
        answer = exchange(self.runtime.endpoint, _request("POST", "/v1/describejobqueues", b"{}", {}))
        assert answer.status == 200 and answer.json()["jobQueues"], answer
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    state = tmp_path_factory.mktemp("fuzz") / "state"
    runtime = build_local(LocalConfig(state_dir=state, port=0), app)
    errors = _Errors()
    logger = logging.getLogger("batchplane")
    with pytest.MonkeyPatch.context() as patch:
        # Nothing the fuzzer submits ever runs: its commands are arbitrary text. Jobs stay STARTING.
        patch.setattr(runtime.launcher, "launch", lambda spec: None)
        runtime.start()
        logger.addHandler(errors)
        try:
            yield Fuzzed(runtime, _seed_world(runtime), state / "state.db", errors)
        finally:
            logger.removeHandler(errors)
            stop_runtime(runtime, 15.0)


def _seed_world(runtime: LocalRuntime) -> World:
    world = World()
    session = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1")
    batch = session.client("batch", endpoint_url=runtime.endpoint, config=CLIENT_CONFIG)
    resources = {"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}
    batch.create_compute_environment(computeEnvironmentName=world.ce, type="MANAGED", computeResources=resources)
    order = [{"order": 1, "computeEnvironment": world.ce}]
    batch.create_job_queue(jobQueueName=world.queue, priority=1, computeEnvironmentOrder=order)
    container = {
        "image": "busybox",
        "command": ["true"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",  # a Fargate definition needs one
    }
    batch.register_job_definition(
        jobDefinitionName=world.jd, type="container", containerProperties=container, platformCapabilities=["FARGATE"]
    )
    share = [{"shareIdentifier": "a", "weightFactor": 1.0}]
    batch.create_scheduling_policy(name=world.policy, fairsharePolicy={"shareDistribution": share})
    job_id = batch.submit_job(jobName="seed", jobQueue=world.queue, jobDefinition=world.jd, arrayProperties={"size": 2})
    batch.close()
    assert runtime.services.logs is not None
    runtime.services.logs.append(world.stream, [(1_700_000_000_000 + i, f"line {i}") for i in range(5)])
    return World(job_id=job_id["jobId"])


def _request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: batchplane", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def check_answer(answer: Answer | tuple[int, dict[str, str], str], head: bool = False) -> int:
    """The per-request contract (module docstring); returns the status."""
    if isinstance(answer, tuple):
        status, raw_headers, text = answer
        headers = {k.lower(): v for k, v in raw_headers.items()}
        body = text.encode()
    else:
        status, headers, body = answer.status, answer.headers, answer.body
    assert status < 500, (status, body[:500])
    assert headers.get("x-amzn-requestid"), (status, headers)
    if head:
        assert body == b"", (status, body[:200])
        return status
    parsed = json.loads(body)
    assert isinstance(parsed, dict), body[:200]
    if status >= 300:
        code = headers.get("x-amzn-errortype")
        assert code and parsed.get("__type") == code and isinstance(parsed.get("message"), str), (status, parsed)
    return status


def _send(fuzzed: Fuzzed, call: Call) -> None:
    before = fuzzed.snapshot()
    answer = exchange(fuzzed.runtime.endpoint, _request(call.method, call.path, encode_body(call.body), call.headers()))
    if check_answer(answer) >= 400:
        assert fuzzed.snapshot() == before, f"{call.operation} was refused ({answer.status}) but wrote"


def test_every_operation_with_mutated_bodies_over_http(fuzzed: Fuzzed) -> None:
    @fuzz_settings(300)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        call = data.draw(mutated(data.draw(calls(fuzzed.world))))
        _send(fuzzed, call)

    run()
    fuzzed.alive()


def test_raw_http_mutations(fuzzed: Fuzzed) -> None:
    @fuzz_settings(250)
    @given(raw_requests(fuzzed.world))
    def run(request: tuple[str, bytes]) -> None:
        method, data = request
        before = fuzzed.snapshot()
        answer = exchange(fuzzed.runtime.endpoint, data, method="HEAD" if method == "HEAD" else "POST")
        if check_answer(answer, head=method == "HEAD") >= 400:
            assert fuzzed.snapshot() == before, f"refused ({answer.status}) but wrote: {data[:300]!r}"

    run()
    fuzzed.alive()


def test_a_keep_alive_connection_stays_in_step_after_any_request(fuzzed: Fuzzed) -> None:
    """A request in any framing, then a plain one on the same connection: either the server closes the connection
    after the first answer, or the second answer is the second request's (a body misread as a request would
    desynchronise every later answer on the connection)."""
    follow = _request("POST", "/v1/describejobqueues", b"{}", {"Content-Type": "application/json"})
    follow = follow.replace(b"Connection: close\r\n", b"")

    @fuzz_settings(150)
    @given(raw_requests(fuzzed.world, keep_alive=True))
    def run(request: tuple[str, bytes]) -> None:
        method, data = request
        answers = exchange_many(fuzzed.runtime.endpoint, data + follow, [method, "POST"])
        check_answer(answers[0], head=method == "HEAD")
        if len(answers) == 2:
            assert answers[1].status == 200 and "jobQueues" in answers[1].json(), (data[:300], answers[1])

    run()
    fuzzed.alive()


def test_the_gateway_gives_the_same_answers_without_a_socket(fuzzed: Fuzzed) -> None:
    """What the AWS runtime's Lambda runs for a request's body (app.py -> api/gateway or api/logs_api)."""
    svc = fuzzed.runtime.services

    @fuzz_settings(150)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        call = data.draw(mutated(data.draw(calls(fuzzed.world))))
        body = encode_body(call.body)
        if call.logs:
            check_answer(handle_logs(svc, call.headers(), body))
            return
        path, _, query = call.path.partition("?")
        check_answer(gateway.handle(svc, call.method, path, call.headers(), body, parse_qs(query)))

    run()
    fuzzed.alive()
