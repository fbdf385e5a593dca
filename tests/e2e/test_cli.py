"""The `batchplane` CLI against a running local runtime: `main(args)` in-process, output captured.

The CLI talks to the runtime over HTTP like any client (stock boto3 for batch and logs, signed POSTs for
batchplane's own operations), so these tests also pin what it shows: real job names, states, reasons and logs.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli import build_parser, main
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from tests.e2e.conftest import (
    Client,
    register,
    setup_queue,
    sh,
    submit,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps to the terminal width; captured output has none


class Cli:
    def __init__(self, endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.endpoint = endpoint
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `batchplane <args> --endpoint <runtime>`."""
        self.capsys.readouterr()
        code = main([*args, "--endpoint", self.endpoint])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(runtime.endpoint, capsys)


# -- describe --------------------------------------------------------------------------------------------------


def test_describe_says_why_a_runnable_job_is_not_running_and_what_a_pending_one_waits_for(
    batch: Client, cli: Cli
) -> None:
    # GIVEN a job too big for its queue's only compute environment, and a job waiting on it
    queue, _ = setup_queue(batch, max_vcpus=2)
    big = register(
        batch,
        "big",
        ["true"],
        resourceRequirements=[{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "8192"}],
    )
    stuck = submit(batch, queue, big, "stuck")
    waiting = submit(batch, queue, register(batch, "after", ["true"]), "after", dependsOn=[{"jobId": stuck}])
    wait_status(batch, [stuck], "RUNNABLE")

    # WHEN the stuck job is described
    code, out, _ = cli("describe", stuck)
    # THEN its state and the reason it waits are shown
    assert code == 0
    assert "stuck" in out and stuck in out and "RUNNABLE" in out
    assert "Why not running" in out
    reason = batch.describe_jobs(jobs=[stuck])["jobs"][0].get("statusReason")
    assert reason and reason.split(" ")[0] in out  # e.g. MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE

    # WHEN the job waiting on it is described THEN its dependency and that dependency's state are shown
    code, out, _ = cli("describe", waiting)
    assert code == 0
    assert "PENDING" in out and "waiting for stuck" in out
    assert "Depends on" in out and stuck in out


def test_describe_says_a_cancel_is_pending_until_the_dependencies_complete(batch: Client, cli: Cli) -> None:
    # GIVEN a job PENDING on one that cannot run yet (its CE is DISABLED), then cancelled
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    jd = register(batch, "quick", ["true"])
    first = submit(batch, queue, jd, "first")
    second = submit(batch, queue, jd, "second", dependsOn=[{"jobId": first}])
    wait_status(batch, [second], "PENDING")
    batch.cancel_job(jobId=second, reason="changed my mind")

    # WHEN it is described THEN the pending cancel and its reason are shown, beside what it waits for
    code, out, _ = cli("describe", second)
    assert code == 0
    assert "PENDING" in out and "Cancel" in out and "pending: fails with reason 'changed my mind'" in out
    assert "waiting for first" in out


def test_describe_shows_every_attempt(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "flaky", sh('echo "attempt $AWS_BATCH_JOB_ATTEMPT"; [ "$AWS_BATCH_JOB_ATTEMPT" = 2 ]'))
    job_id = submit(batch, queue, jd, "flaky", retryStrategy={"attempts": 2})
    assert wait_terminal(batch, [job_id])[job_id]["status"] == "SUCCEEDED"
    code, out, _ = cli("describe", job_id)
    assert code == 0
    assert "SUCCEEDED" in out and "2 of at most 2" in out
    attempts = out[out.index("Attempts") :]
    rows = [line for line in attempts.splitlines() if "Essential container in task exited" in line]
    assert len(rows) == 2 and "│ 1 " in rows[0] and "│ 2 " in rows[1]  # exit code 1, then 0


def test_describe_of_an_unknown_job_fails_with_a_message(cli: Cli) -> None:
    code, out, err = cli("describe", "no-such-job")
    assert code == 1 and out == ""
    assert "batchplane: job no-such-job does not exist" in err


def test_an_unreachable_endpoint_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["describe", "x", "--endpoint", "http://127.0.0.1:9"])
    assert code == 1
    assert "cannot reach batchplane at http://127.0.0.1:9" in capsys.readouterr().err


# -- logs ------------------------------------------------------------------------------------------------------


def test_logs_of_the_latest_and_of_an_earlier_attempt(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch)
    jd = register(
        batch, "twice", sh('echo "hello from $AWS_BATCH_JOB_ATTEMPT"; echo bye; [ "$AWS_BATCH_JOB_ATTEMPT" = 2 ]')
    )
    job_id = submit(batch, queue, jd, retryStrategy={"attempts": 2})
    wait_terminal(batch, [job_id])
    assert cli("logs", job_id)[:2] == (0, "hello from 2\nbye\n")
    assert cli("logs", job_id, "--attempt", "1")[:2] == (0, "hello from 1\nbye\n")
    code, _, err = cli("logs", job_id, "--attempt", "3")
    assert code == 1 and "has no attempt 3 (it has 2)" in err


def test_logs_follow_prints_until_the_job_ends(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "slow", sh("for i in 1 2 3; do echo line $i; sleep 0.3; done"))
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNING")
    code, out, _ = cli("logs", job_id, "--follow")
    assert code == 0
    assert out.splitlines() == ["line 1", "line 2", "line 3"]
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED"


def test_logs_of_a_job_that_has_not_started(batch: Client, cli: Cli) -> None:
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    job_id = submit(batch, queue, register(batch, "later", ["true"]))
    wait_status(batch, [job_id], "RUNNABLE")
    code, out, _ = cli("logs", job_id)
    assert code == 0 and f"job {job_id} has not started yet (RUNNABLE): no logs" in out


# -- dag and watch ---------------------------------------------------------------------------------------------


def pipeline(batch: Client, queue: str) -> dict[str, str]:
    """first -> (array of 3, side) -> last: a diamond with an array in it."""
    jd = register(batch, "step", ["true"])
    first = submit(batch, queue, jd, "first")
    array = submit(batch, queue, jd, "fan", arrayProperties={"size": 3}, dependsOn=[{"jobId": first}])
    side = submit(batch, queue, jd, "side", dependsOn=[{"jobId": first}])
    last = submit(batch, queue, jd, "last", dependsOn=[{"jobId": array}, {"jobId": side}])
    return {"first": first, "fan": array, "side": side, "last": last}


def test_dag_shows_ancestors_and_descendants_as_a_tree_and_an_svg(batch: Client, cli: Cli, tmp_path: Path) -> None:
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")  # all wait: every edge is recorded
    jobs = pipeline(batch, queue)
    svg, dot = tmp_path / "dag.svg", tmp_path / "dag.dot"

    # WHEN the middle of the DAG is drawn
    code, out, _ = cli("dag", jobs["side"], "--svg", str(svg), "--dot", str(dot))
    # THEN the tree shows what it depends on and what depends on it
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("side (")
    up, down = out.index("depends on"), out.index("needed by")
    assert up < out.index("first (") < down < out.index("last (")
    assert "PENDING" in lines[0]
    # AND the picture has a box per job and an arrow per dependency (a sibling is neither ancestor nor descendant)
    assert texts_of(svg) >= {"first", "side", "last"} and "fan" not in texts_of(svg)
    assert arrows_in(svg) == 2
    assert f'"{jobs["first"]}" -> "{jobs["side"]}";' in dot.read_text()

    # WHEN the last job is drawn THEN every ancestor is found through dependsOn, the array as one node
    code, out, _ = cli("dag", jobs["last"], "--svg", str(svg))
    assert code == 0
    assert all(f"{name} (" in out for name in ("first", "fan", "side")) and "array 0/3" in out
    assert texts_of(svg) >= {"first", "fan", "side", "last"} and arrows_in(svg) == 4
    assert any("0/3" in t for t in texts_of(svg))


SVG = "{http://www.w3.org/2000/svg}"


def texts_of(svg: Path) -> set[str]:
    return {t.text or "" for t in ET.parse(svg).getroot().iter(f"{SVG}text")}


def arrows_in(svg: Path) -> int:
    return sum(1 for p in ET.parse(svg).getroot().iter(f"{SVG}path") if p.get("marker-end"))


def test_watch_plain_follows_a_dag_until_it_is_done(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch)
    jobs = pipeline(batch, queue)
    code, out, _ = cli("watch", jobs["last"], "--plain", "--interval", "0.2")
    assert code == 0
    lines = out.splitlines()
    assert lines[-1].endswith("DAG 6/6 | first SUCCEEDED | fan SUCCEEDED 3/3 | side SUCCEEDED | last SUCCEEDED")
    assert len(lines) == len(set(lines))  # a line per change, not per poll


def test_watch_exits_1_when_the_dag_fails(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch)
    failing = submit(batch, queue, register(batch, "boom", sh("exit 3")), "boom")
    after = submit(batch, queue, register(batch, "never", ["true"]), "never", dependsOn=[{"jobId": failing}])
    code, out, _ = cli("watch", after, "--plain", "--interval", "0.2")
    assert code == 1
    assert "boom FAILED | never FAILED" in out
    assert f"FAILED: never ({after}): Dependent Job failed" in out
    # AND the job that never ran has no logs, and says why
    code, out, _ = cli("logs", after)
    assert code == 0 and f"job {after} ended without running (Dependent Job failed: {failing}): no logs" in out


def test_watch_live_renders_tables(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch)
    jobs = pipeline(batch, queue)
    wait_terminal(batch, list(jobs.values()))
    code, out, _ = cli("watch", jobs["last"], "--interval", "0.2")
    assert code == 0
    assert "DAG" in out and "6/6" in out and "3/3" in out and "◀" in out


def test_watch_a_queue_once(batch: Client, cli: Cli) -> None:
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    submit(batch, queue, register(batch, "waits", ["true"]), "waits")
    wait_status(
        batch, [s["jobId"] for s in batch.list_jobs(jobQueue=queue, jobStatus="RUNNABLE")["jobSummaryList"]], "RUNNABLE"
    )
    code, out, _ = cli("watch", "--queue", queue, "--once", "--plain")
    assert code == 0
    assert f"{queue}: SUBMITTED=0 PENDING=0 RUNNABLE=1 STARTING=0 RUNNING=0 SUCCEEDED=0 FAILED=0" in out
    code, out, _ = cli("watch", "--queue", queue, "--once")
    assert code == 0 and "waits" in out and "active jobs" in out


def test_watch_needs_a_job_or_a_queue(cli: Cli) -> None:
    code, _, err = cli("watch")
    assert code == 1 and "watch takes a JOBID or --queue QUEUE" in err


# -- triggers --------------------------------------------------------------------------------------------------


def test_triggers_create_list_describe_delete(batch: Client, cli: Cli, tmp_path: Path) -> None:
    queue, _ = setup_queue(batch)
    register(batch, "ingest", ["echo", "Ref::key"])
    definition = tmp_path / "trigger.json"
    definition.write_text(
        json.dumps(
            {
                "triggerName": "on-csv",
                "jobQueue": queue,
                "jobDefinition": "ingest",
                "jobName": "ingest",
                "source": {"s3": {"bucket": "data-in", "prefix": "in/", "suffix": ".csv"}},
            }
        )
    )
    code, out, _ = cli("triggers", "create", "--file", str(definition))
    assert code == 0
    assert "created trigger on-csv (arn:aws:batch:us-east-1:123456789012:trigger/on-csv)" in out
    assert "drop files into <state-dir>/buckets/data-in/in/" in out

    code, out, _ = cli("triggers", "list")
    assert code == 0 and "on-csv" in out and "s3://data-in/in/*.csv" in out and "on new objects" in out

    code, out, _ = cli("triggers", "describe", "on-csv")
    described: dict[str, Any] = json.loads(out)
    assert code == 0 and described["source"] == {"s3": {"bucket": "data-in", "prefix": "in/", "suffix": ".csv"}}

    code, _, err = cli("triggers", "create", "--file", str(definition))
    assert code == 1 and "CreateTrigger: ClientException: triggerName: trigger on-csv already exists" in err

    assert cli("triggers", "delete", "on-csv")[:2] == (0, "deleted trigger on-csv\n")
    assert "no triggers" in cli("triggers", "list")[1]


def test_a_schedule_trigger_shows_its_next_fire_time(batch: Client, cli: Cli, tmp_path: Path) -> None:
    queue, _ = setup_queue(batch)
    register(batch, "tick", ["true"])
    definition = tmp_path / "t.json"
    source = {"schedule": {"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Paris"}}
    body = {"triggerName": "weekdays", "jobQueue": queue, "jobDefinition": "tick", "jobName": "tick", "source": source}
    definition.write_text(json.dumps(body))
    code, out, _ = cli("triggers", "create", "--file", str(definition))
    assert code == 0 and "next fire: " in out
    assert "cron(0 9 ? * MON-FRI *) Europe/Paris" in cli("triggers", "list")[1]


def test_a_bad_definition_file_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = cli("triggers", "create", "--file", str(bad))
    assert code == 1 and "is not valid JSON" in err
    code, _, err = cli("triggers", "create", "--file", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err


# -- options ---------------------------------------------------------------------------------------------------


def test_up_keeps_its_flags_and_the_client_commands_take_endpoint_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    up = build_parser().parse_args(["up"])
    assert (up.host, up.port, up.state_dir, up.region) == ("127.0.0.1", 8000, "./.batchplane", "us-east-1")
    assert up.retention_days == LocalConfig(state_dir=Path("s")).retention_days == 30.0  # as DynamoDB's TTL on AWS
    assert not hasattr(up, "endpoint")
    monkeypatch.setenv("BATCHPLANE_ENDPOINT", "http://batch.example:8080")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.delenv("AWS_REGION", raising=False)
    for command in (["watch", "j"], ["logs", "j"], ["describe", "j"], ["dag", "j"], ["triggers", "list"]):
        args = build_parser().parse_args(command)
        assert (args.endpoint, args.region) == ("http://batch.example:8080", "eu-west-3")
    args = build_parser().parse_args(["describe", "j", "--endpoint", "http://x:1", "--region", "us-west-2"])
    assert (args.endpoint, args.region) == ("http://x:1", "us-west-2")


def test_dag_finds_a_dependent_submitted_after_its_dependency_finished(batch: Client, cli: Cli, tmp_path: Path) -> None:
    # GIVEN a job that has finished, and a job submitted afterwards that depends on it
    queue, _ = setup_queue(batch)
    jd = register(batch, "step", ["true"])
    first = submit(batch, queue, jd, "first")
    wait_terminal(batch, [first])
    late = submit(batch, queue, jd, "late", dependsOn=[{"jobId": first}])

    # WHEN the first job's graph is drawn THEN the late dependent is there
    code, out, _ = cli("dag", first, "--svg", str(tmp_path / "dag.svg"))
    assert code == 0
    assert "needed by" in out and "late (" in out
    assert late


@pytest.mark.parametrize("days", ["-1", "nan", "inf"])
def test_up_refuses_a_retention_that_is_not_a_finite_positive_number(
    days: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["up", "--retention-days", days, "--state-dir", str(tmp_path / "s"), "--port", "0"]) == 2
    assert "--retention-days must be 0 (keep every job) or a positive number" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything was created


# -- multi-node parallel jobs ------------------------------------------------------------------------------------


def test_describe_watch_and_dag_show_a_multi_node_jobs_nodes(batch: Client, cli: Cli) -> None:
    queue, _ = setup_queue(batch, 4, platform="EC2")
    node = {"image": "busybox", "command": sh("echo node $AWS_BATCH_JOB_NODE_INDEX"), "resourceRequirements": []}
    props = {"numNodes": 2, "mainNode": 1, "nodeRangeProperties": [{"targetNodes": "0:", "container": node}]}
    jd = batch.register_job_definition(jobDefinitionName="mnp", type="multinode", nodeProperties=props)
    job_id = submit(batch, queue, jd["jobDefinitionArn"], "gang")
    wait_terminal(batch, [job_id])
    code, out, _ = cli("describe", job_id)
    assert code == 0
    assert "Nodes" in out and "2, main node 1" in out
    assert f"{job_id}#0" in out and f"{job_id}#1" in out and "1 (main)" in out
    code, out, _ = cli("describe", f"{job_id}#1")
    assert code == 0 and "the main node" in out
    code, out, _ = cli("logs", f"{job_id}#1")  # the main node (node 0 may be stopped before it printed)
    assert code == 0 and out.splitlines() == ["node 1"]
    code, _, err = cli("logs", job_id)
    assert code != 0 and f"its nodes have the logs: {job_id}#<index>" in err
    code, out, _ = cli("watch", job_id, "--interval", "0.2")
    assert code == 0 and "node 0" in out and "node 1 (main)" in out
    code, out, _ = cli("dag", f"{job_id}#0")  # a node job stands for its job
    assert code == 0 and out.splitlines()[0].startswith("gang (") and "2 nodes, main node 1" in out
    node_lines = [line for line in out.splitlines() if "node 0 (" in line or "node 1 (main) (" in line]
    assert len(node_lines) == 2 and "SUCCEEDED  exit 0" in node_lines[1]  # its nodes, under it
