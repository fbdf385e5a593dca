"""The demo pipeline (`make demo`: demo/pipeline.py) against an in-process runtime: it runs, retries its flaky step,
and computes the right answer; `--watch` runs `batchplane watch` to the end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.cli import main as cli
from chalicelib.runtime.local import LocalRuntime
from demo import pipeline
from tests.docker_support import remove_containers
from tests.e2e.conftest import ClientFactory, Runtimes, describe, job_log, wait_terminal

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["process", "docker"])
def runtime(request: pytest.FixtureRequest, make_runtime: Runtimes, tmp_path: Path) -> Iterator[LocalRuntime]:
    """A runtime that allows the demo's folder to be mounted, as `make run` does: with each executor (`make demo`
    must work with and without an engine)."""
    engine = request.getfixturevalue("docker_engine") if request.param == "docker" else None
    rt = make_runtime.start(executor=request.param, allow_host_paths=(str(tmp_path / "data"),))
    assert rt.executor == request.param
    yield rt
    if engine is not None:
        make_runtime.stop_all()
        remove_containers(engine, make_runtime.state_dir)


def test_the_pipeline_splits_processes_merges_and_publishes_after_one_retry(
    runtime: LocalRuntime, clients: ClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = clients("batch", runtime.endpoint)
    logs = clients("logs", runtime.endpoint)
    # GIVEN the demo's resources (twice: creating them is idempotent)
    pipeline.ensure_resources(batch, tmp_path / "data")
    pipeline.ensure_resources(batch, tmp_path / "data")
    # WHEN the pipeline is submitted and watched to the end
    run = pipeline.submit(batch, tmp_path / "data" / "run-1", chunks=3, lines=300, seed=1)
    assert cli(["watch", run.publish, "--plain", "--interval", "0.2", "--endpoint", runtime.endpoint]) == 0
    # THEN every step succeeded and the report holds the sum of the input
    jobs = describe(batch, [run.split, run.process, run.merge, run.publish])
    assert {j["jobName"]: j["status"] for j in jobs.values()} == {
        "demo-split": "SUCCEEDED",
        "demo-process": "SUCCEEDED",
        "demo-merge": "SUCCEEDED",
        "demo-publish": "SUCCEEDED",
    }
    assert (run.data_dir / "report.txt").read_text().strip() == run.expected
    numbers = [int(n) for n in (run.data_dir / "numbers.txt").read_text().split()]
    assert run.expected == f"sum={sum(numbers)} count=300 mean={sum(numbers) / 300:.2f}"
    # AND the array had one child per chunk, each summing its own chunk
    children = describe(batch, [f"{run.process}:{i}" for i in range(3)])
    assert all(c["status"] == "SUCCEEDED" for c in children.values())
    assert [job_log(logs, children[f"{run.process}:{i}"])[0].split(":")[0] for i in range(3)] == [
        "chunk 0",
        "chunk 1",
        "chunk 2",
    ]
    # AND publish failed on its first attempt and succeeded on the retry
    publish = jobs[run.publish]
    assert [a["container"]["exitCode"] for a in publish["attempts"]] == [1, 0]
    assert job_log(logs, publish)[0].startswith(f"published {run.expected} on attempt 2")
    assert job_log(logs, jobs[run.merge]) == [run.expected]


def test_main_prints_how_to_watch_and_with_watch_runs_it(
    runtime: LocalRuntime, clients: ClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the demo runs as `make demo` runs it, against the runtime's endpoint
    code = pipeline.main(["--endpoint", runtime.endpoint, "--data-dir", str(tmp_path / "data"), "--watch"])
    out = capsys.readouterr().out
    # THEN it printed the jobs and the watch command, watched to the end, and showed the report
    assert code == 0
    publish = re.search(r"publish\s+(\S+)", out)
    assert publish is not None
    assert f"batchplane watch {publish.group(1)} --endpoint {runtime.endpoint}" in out
    assert re.search(r"report: sum=\d+ count=1000 mean=[\d.]+ +\(expected sum=", out)
    report, expected = re.search(r"report: (.*?)  \(expected (.*)\)", out).groups()  # type: ignore[union-attr]
    assert report == expected
    batch = clients("batch", runtime.endpoint)
    assert wait_terminal(batch, [publish.group(1)])[publish.group(1)]["status"] == "SUCCEEDED"


def test_a_queue_left_by_an_older_fargate_demo_is_moved_to_the_ec2_environment(
    make_runtime: Runtimes, clients: ClientFactory, tmp_path: Path
) -> None:
    rt = make_runtime.start(executor="process", allow_host_paths=(str(tmp_path / "data"),))
    batch = clients("batch", rt.endpoint)
    # GIVEN what an older demo created: a FARGATE compute environment `demo` and the queue `demo` on it
    fargate = {"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-demo"], "securityGroupIds": ["sg-demo"]}
    batch.create_compute_environment(computeEnvironmentName="demo", type="MANAGED", computeResources=fargate)
    order = [{"order": 1, "computeEnvironment": "demo"}]
    batch.create_job_queue(jobQueueName="demo", priority=1, computeEnvironmentOrder=order)
    # WHEN this demo ensures its resources, and its pipeline runs
    pipeline.ensure_resources(batch, tmp_path / "data")
    # THEN the queue runs on the EC2 environment, and the pipeline (EC2 definitions, a host folder) completes
    queue = batch.describe_job_queues(jobQueues=["demo"])["jobQueues"][0]
    assert [c["computeEnvironment"].rsplit("/", 1)[-1] for c in queue["computeEnvironmentOrder"]] == ["demo-ec2"]
    assert queue["jobQueueType"] == "ECS"
    run = pipeline.submit(batch, tmp_path / "data" / "run-1", chunks=2, lines=10, seed=3)
    assert wait_terminal(batch, [run.publish])[run.publish]["status"] == "SUCCEEDED"
    assert (run.data_dir / "report.txt").read_text().strip() == run.expected
