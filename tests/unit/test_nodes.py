"""Multi-node parallel jobs, the pure parts (domain/nodes.py): node ranges, the job's node properties after
nodeOverrides, the resources of all nodes, and the node jobs as views of the stored job."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import nodes
from chalicelib.domain.effects import effects_of
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import FAILED, RUNNABLE, RUNNING, STARTING, SUCCEEDED, TIMEOUT_REASON
from chalicelib.domain.lifecycle import (
    UNCHANGED,
    LaunchNodes,
    NodeStarted,
    NodeStopped,
    Publish,
    PublishNode,
    StopTask,
    TaskStarted,
    TaskStopped,
    transition,
)
from chalicelib.domain.retry import RetryStrategy
from tests.unit.builders import a_job, an_attempt

LATER = 1_700_000_100_000


def c(command: str, vcpus: str = "1", memory: str = "1024") -> dict[str, Any]:
    reqs = [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}]
    return {"image": "busybox", "command": [command], "resourceRequirements": reqs}


def props(num: int, main: int, *ranges: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "numNodes": num,
        "mainNode": main,
        "nodeRangeProperties": [{"targetNodes": t, "container": x} for t, x in ranges],
    }


@pytest.mark.parametrize(
    ("target", "expected"), [("0:3", (0, 3)), (":2", (0, 2)), ("4:", (4, 9)), ("7", (7, 7)), ("9:9", (9, 9))]
)
def test_node_ranges_read_as_aws_documents_them(target: str, expected: tuple[int, int]) -> None:
    assert nodes.parse_range(target, 10, "targetNodes") == expected


@pytest.mark.parametrize("target", ["", "a:", "3:1", "0:10", "10", "-1:2", "²:3", None])
def test_bad_node_ranges_are_refused_naming_the_field(target: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"^targetNodes "):
        nodes.parse_range(target, 10, "targetNodes")


def test_a_narrower_range_overrides_the_wider_one_it_nests_in() -> None:
    np = nodes.effective(props(6, 0, ("0:5", c("wide")), ("2:3", c("narrow"))), None)
    assert [nodes.container_of(np, i)["command"] for i in range(6)] == [["wide"]] * 2 + [["narrow"]] * 2 + [
        ["wide"]
    ] * 2
    assert [r["targetNodes"] for r in np["nodeRangeProperties"]] == ["0:1", "2:3", "4:5"]


def test_node_overrides_change_the_count_and_the_containers_of_their_range() -> None:
    o = {"numNodes": 4, "nodePropertyOverrides": [{"targetNodes": "3:", "containerOverrides": {"command": ["x"]}}]}
    np = nodes.effective(props(2, 1, ("0:", c("all"))), o)
    assert np["numNodes"] == 4 and np["mainNode"] == 1
    assert [nodes.container_of(np, i)["command"] for i in range(4)] == [["all"]] * 3 + [["x"]]


def test_node_overrides_cannot_leave_the_main_node_out() -> None:
    with pytest.raises(InvalidRequest, match=r"^nodeOverrides.numNodes "):
        nodes.effective(props(3, 2, ("0:", c("all"))), {"numNodes": 2})


def test_the_job_needs_the_resources_of_all_its_nodes_at_once() -> None:
    np = nodes.effective(props(3, 0, ("0", c("m", "2", "4096")), ("1:", c("w", "0.5", "512"))), None)
    assert nodes.totals(np) == (3.0, 5120)


def test_node_ids() -> None:
    assert nodes.node_id("abc", 2) == "abc#2"
    assert nodes.split_node_id("abc#2") == ("abc", 2)
    assert nodes.split_node_id("abc:2") is None and nodes.split_node_id("#2") is None
    assert nodes.split_node_id("abc#x") is None


def a_multinode_job(**overrides: Any) -> Any:
    np = nodes.effective(props(3, 1, ("0:", c("n"))), None)
    return a_job(node_properties=np, **overrides)


def test_nodes_follow_the_job_and_a_node_that_ended_on_its_own_keeps_its_end() -> None:
    job = a_multinode_job(status=RUNNING, current=an_attempt(1, started_at=1))
    assert [nodes.node_view(job, i).status for i in range(3)] == [RUNNING] * 3
    # GIVEN node 2 exits 5 while the main node runs
    outcome = transition(job, NodeStopped(1, 2, 5), LATER)
    assert outcome.effects == (PublishNode(2),)
    assert outcome.job is not None
    assert transition(outcome.job, NodeStopped(1, 2, 5), LATER).job is None  # a duplicate changes nothing
    views = [nodes.node_view(outcome.job, i) for i in range(3)]
    assert [v.status for v in views] == [RUNNING, RUNNING, FAILED]
    # WHEN the main node ends with 0 and node 0 was stopped with it
    ends = {"0": {"exitCode": 143, "withMain": True, "statusReason": nodes.STOPPED_WITH_MAIN}, "2": {"exitCode": 0}}
    done = transition(outcome.job, TaskStopped(1, 0, nodes=ends), LATER).job
    assert done is not None and done.status == SUCCEEDED
    # THEN node 0 takes the job's status, node 2 keeps the end it had on its own
    views = [nodes.node_view(done, i) for i in range(3)]
    assert [v.status for v in views] == [SUCCEEDED, SUCCEEDED, FAILED]
    assert [v.attempts[0].exit_code for v in views] == [143, 0, 5]
    assert views[1].node_index == 1 and views[1].job_id == f"{job.job_id}#1"
    assert len({v.attempts[0].log_stream for v in views}) == 3


def test_listing_nodes_by_status() -> None:
    job = a_multinode_job(status=RUNNING, current=an_attempt(1, nodes={"0": {"exitCode": 0}}))
    assert [v.node_index for v in nodes.node_views(job, RUNNING)] == [1, 2]
    assert [v.node_index for v in nodes.node_views(job, SUCCEEDED)] == [0]
    assert nodes.node_views(replace(job, node_properties=None)) == []


def test_the_main_node_always_has_the_jobs_status() -> None:
    # GIVEN a terminated job whose main node exited 0 on its SIGTERM  THEN the main node failed with the job
    job = a_multinode_job(status=RUNNING, current=an_attempt(1, started_at=1), is_terminated=True)
    done = transition(job, TaskStopped(1, 0, nodes={"1": {"exitCode": 0}}), LATER).job
    assert done is not None and done.status == FAILED
    assert nodes.node_view(done, 1).status == FAILED


# -- the other nodes' launch and stop, decided here (LaunchNodes, StopTask), carried out by Reactor.run_effects ------


def test_the_main_node_running_at_an_address_asks_the_other_nodes_launch() -> None:
    job = a_multinode_job(status=STARTING, current=an_attempt(1))
    # WHEN the main node's task runs at 10.0.1.7 (ECS: the launcher does not run the others itself)
    outcome = transition(job, TaskStarted(1, "arn:task/main", main_address="10.0.1.7"), LATER)
    # THEN the job runs, and the other nodes are to be launched with that address
    assert outcome.job is not None and outcome.job.status == RUNNING
    assert outcome.effects == (Publish(), LaunchNodes(1, "10.0.1.7"))
    # AND a redelivered start asks again without a write (a launch a crash cut short completes; launches are
    # idempotent), a start without an address (the local launchers run the nodes themselves) asks nothing
    again = transition(outcome.job, TaskStarted(1, main_address="10.0.1.7"), LATER)
    assert (again.job, again.effects) == (None, (LaunchNodes(1, "10.0.1.7"),))
    assert transition(job, TaskStarted(1), LATER).effects == (Publish(),)
    assert transition(outcome.job, TaskStarted(1), LATER).effects == ()


def test_no_node_is_launched_for_an_attempt_that_is_over_or_being_stopped() -> None:
    running = a_multinode_job(status=RUNNING, current=an_attempt(1, started_at=1))
    start = TaskStarted(1, main_address="10.0.1.7")
    assert transition(running, TaskStarted(2, main_address="10.0.1.7"), LATER).effects == ()  # not its attempt
    assert transition(replace(running, is_terminated=True), start, LATER).effects == ()
    timed_out = replace(running, current=an_attempt(1, started_at=1, status_reason=TIMEOUT_REASON))
    assert transition(timed_out, start, LATER).effects == ()
    done = transition(running, TaskStopped(1, 0), LATER).job
    assert done is not None and transition(done, start, LATER).effects == ()
    # a single-container job's repeated start asks nothing either
    assert transition(a_job(status=RUNNING, current=an_attempt(1)), start, LATER).effects == ()


def test_the_attempts_end_asks_its_other_nodes_be_stopped() -> None:
    running = a_multinode_job(status=RUNNING, current=an_attempt(1, started_at=1))
    ended = transition(running, TaskStopped(1, 0, stop_nodes=nodes.STOPPED_WITH_MAIN), LATER)
    assert ended.job is not None and ended.job.status == SUCCEEDED
    assert ended.effects[-1] == StopTask(1, nodes.STOPPED_WITH_MAIN)
    # a node that failed to start fails the attempt (retried: RUNNABLE), and the nodes are stopped
    retried = replace(running, retry_strategy=RetryStrategy(attempts=2))
    why = "Node 1 failed to start: no"
    failed = transition(retried, TaskStopped(1, None, status_reason=why, stop_nodes=why), LATER)
    assert failed.job is not None and failed.job.status == RUNNABLE
    assert failed.effects[-1] == StopTask(1, why)
    # a duplicate (the attempt is over) asks again, without a write: a crash between the end's write and its
    # StopTask left the nodes running, and the redelivery repairs it
    again = transition(ended.job, TaskStopped(1, 0, stop_nodes=nodes.STOPPED_WITH_MAIN), LATER)
    assert (again.job, again.effects) == (None, (StopTask(1, nodes.STOPPED_WITH_MAIN),))
    repeated = transition(failed.job, TaskStopped(1, None, stop_nodes=why), LATER)  # retried: attempt 2 waits
    assert (repeated.job, repeated.effects) == (None, (StopTask(1, why),))
    # an attempt that is not over yet, or was never made, is not stopped by it
    assert transition(failed.job, TaskStopped(2, None, stop_nodes=why), LATER).effects == ()
    # without stop_nodes (the local launchers stop their nodes themselves) a duplicate asks nothing
    assert transition(ended.job, TaskStopped(1, 0), LATER).effects == ()


# -- on ECS, each node's own task (NodeStarted, or with its NodeStopped) -------------------------------------------

TASKS = "arn:aws:ecs:us-east-1:123456789012:task/batchplane"


def an_ecs_job() -> Any:
    """A RUNNING 3-node job (main node 1) whose main node's task is an ECS task."""
    attempt = an_attempt(1, started_at=1, task_id=f"{TASKS}/main", log_stream="mnp/default/main")
    return a_multinode_job(status=RUNNING, current=attempt)


def task_of(job: Any, index: int) -> tuple[str, str]:
    view = nodes.node_view(job, index)
    assert view.current is not None
    return view.current.task_id, view.current.log_stream


def test_a_node_task_that_runs_is_recorded_once_and_shown_as_the_node_jobs() -> None:
    job = an_ecs_job()
    # WHEN node 2's task runs
    outcome = transition(job, NodeStarted(1, 2, f"{TASKS}/n2"), LATER)
    # THEN one write records it (its id alone: ARN and stream are the main node's with it), and its RUNNING is
    # published, now that its task is known
    started = outcome.job
    assert started is not None and outcome.effects == (PublishNode(2),)
    assert started.current is not None and started.current.nodes == {"2": {"taskId": "n2"}}
    assert effects_of(job, started) == (PublishNode(2),)
    assert task_of(started, 2) == (f"{TASKS}/n2", "mnp/default/n2")
    assert task_of(started, 1) == (f"{TASKS}/main", "mnp/default/main")  # the main node's: the attempt's
    assert task_of(started, 0)[0] != f"{TASKS}/n2"  # node 0 not reported yet: derived
    assert nodes.node_view(started, 2).status == RUNNING  # a task that runs is no end
    # AND a repeat changes nothing, nor does another attempt's, nor one for a job that ended
    assert transition(started, NodeStarted(1, 2, f"{TASKS}/n2"), LATER) == UNCHANGED
    assert transition(started, NodeStarted(1, 2, f"{TASKS}/other"), LATER) == UNCHANGED
    assert transition(started, NodeStarted(2, 0, f"{TASKS}/n0"), LATER) == UNCHANGED
    done = transition(started, TaskStopped(1, 0), LATER).job
    assert done is not None and transition(done, NodeStarted(1, 0, f"{TASKS}/n0"), LATER) == UNCHANGED


def test_a_node_task_elsewhere_is_recorded_in_full() -> None:
    job = an_ecs_job()
    other = "arn:aws:ecs:us-east-1:123456789012:task/other-cluster/n2"
    started = transition(job, NodeStarted(1, 2, other, "its/own/stream"), LATER).job
    assert started is not None and started.current is not None
    assert started.current.nodes == {"2": {"taskArn": other, "logStream": "its/own/stream"}}
    assert task_of(started, 2) == (other, "its/own/stream")


def test_a_node_whose_stop_comes_first_records_its_task_with_its_end() -> None:
    job = an_ecs_job()
    # WHEN node 0's STOPPED arrives before its RUNNING
    stopped = transition(job, NodeStopped(1, 0, 3, task_arn=f"{TASKS}/n0"), LATER)
    assert stopped.job is not None and stopped.effects == (PublishNode(0),)
    assert task_of(stopped.job, 0) == (f"{TASKS}/n0", "mnp/default/n0")
    assert nodes.node_view(stopped.job, 0).status == FAILED
    # THEN its RUNNING, late, changes nothing
    assert transition(stopped.job, NodeStarted(1, 0, f"{TASKS}/n0"), LATER) == UNCHANGED
    # AND a node that ran and then stopped keeps its task with its end (one PublishNode each)
    started = transition(job, NodeStarted(1, 2, f"{TASKS}/n2"), LATER).job
    assert started is not None
    ended = transition(started, NodeStopped(1, 2, 0, task_arn=f"{TASKS}/n2"), LATER)
    assert ended.job is not None and ended.effects == (PublishNode(2),)
    assert effects_of(started, ended.job) == (PublishNode(2),)
    assert ended.job.current is not None and ended.job.current.nodes == {
        "2": {"taskId": "n2", "exitCode": 0, "stoppedAt": LATER, "statusReason": "Essential container in task exited"}
    }
    assert nodes.node_view(ended.job, 2).status == SUCCEEDED


def test_the_main_nodes_end_keeps_the_nodes_tasks_and_their_own_ends() -> None:
    job = an_ecs_job()
    for event in (NodeStarted(1, 0, f"{TASKS}/n0"), NodeStarted(1, 2, f"{TASKS}/n2"), NodeStopped(1, 2, 5)):
        job = transition(job, event, LATER).job
    # WHEN the main node ends, node 0 stopped with it
    with_main = {"statusReason": nodes.STOPPED_WITH_MAIN, "withMain": True}
    done = transition(job, TaskStopped(1, 0, nodes={"0": with_main, "2": with_main}), LATER).job
    assert done is not None and done.status == SUCCEEDED
    # THEN every node's attempt shows its own task; node 2 keeps the end it had on its own
    (n0,) = nodes.node_view(done, 0).attempts
    (n2,) = nodes.node_view(done, 2).attempts
    assert (n0.task_id, n0.log_stream, n0.status_reason) == (f"{TASKS}/n0", "mnp/default/n0", nodes.STOPPED_WITH_MAIN)
    assert (n2.task_id, n2.exit_code, nodes.node_view(done, 2).status) == (f"{TASKS}/n2", 5, FAILED)
    assert nodes.node_view(done, 0).status == SUCCEEDED


def test_on_ecs_a_nodes_running_is_published_when_its_task_runs_not_with_the_jobs() -> None:
    job = an_ecs_job()
    # the job's RUNNING: on ECS, the main node's alone (the others' tasks have not run); locally every node's
    assert [v.node_index for v in nodes.published_with_job(job, nodes_report_start=True)] == [1]
    assert [v.node_index for v in nodes.published_with_job(job, nodes_report_start=False)] == [0, 1, 2]
    # a node whose task ran, or ended, is published with the job's later changes
    started = transition(job, NodeStarted(1, 2, f"{TASKS}/n2"), LATER).job
    assert started is not None
    assert [v.node_index for v in nodes.published_with_job(started, nodes_report_start=True)] == [1, 2]
    # and once the job ends, every node is
    done = transition(started, TaskStopped(1, 0), LATER).job
    assert done is not None
    assert [v.node_index for v in nodes.published_with_job(done, nodes_report_start=True)] == [0, 1, 2]


NODE_EVENTS = [
    NodeStarted(1, 0, f"{TASKS}/n0"),
    NodeStopped(1, 0, 3, task_arn=f"{TASKS}/n0"),
    NodeStarted(1, 2, f"{TASKS}/n2"),
    NodeStopped(1, 2, 0, task_arn=f"{TASKS}/n2"),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(NODE_EVENTS), min_size=1, max_size=10))
def test_node_events_delivered_twice_and_in_any_order_record_each_task_once(events: list[Any]) -> None:
    # GIVEN the nodes' task events delivered at least once, in any order, then the main node's end
    job = an_ecs_job()
    writes: dict[int, int] = {0: 0, 2: 0}
    for event in events:
        outcome = transition(job, event, LATER)
        if outcome.job is None:
            continue
        # each write carries exactly what the lifecycle listed (one pipeline: docs/adr/0023)
        assert effects_of(job, outcome.job) == outcome.effects == (PublishNode(event.index),)
        writes[event.index] += 1
        job = outcome.job
    with_main = {"statusReason": nodes.STOPPED_WITH_MAIN, "withMain": True}
    done = transition(job, TaskStopped(1, 0, nodes={"0": with_main, "2": with_main}), LATER).job
    assert done is not None
    for i in (0, 2):
        mine = [e for e in events if e.index == i]
        # THEN a node written at most twice: its task with its first event, its end (when its STOPPED came after)
        first_stop = next((n for n, e in enumerate(mine) if isinstance(e, NodeStopped)), None)
        assert writes[i] == (0 if not mine else 1 if first_stop in (None, 0) else 2)
        # ... its node job shows its own task whenever an event of it arrived, and its own end if it had one
        (attempt,) = nodes.node_view(done, i).attempts
        assert (attempt.task_id == f"{TASKS}/n{i}") == bool(mine)
        expected = nodes.STOPPED_WITH_MAIN if first_stop is None else "Essential container in task exited"
        assert attempt.status_reason == expected
