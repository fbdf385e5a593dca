"""Multi-node parallel jobs (docs/adr/0027): node properties, their validation, and the node jobs as views. Pure.

A multi-node parallel job is stored as one job (the parent): it is claimed as one unit with the resources of all
its nodes, launched by one `Launch` that the launcher expands into one task per node, and it ends when its main
node ends. Its node jobs, `<jobId>#<index>`, are never stored: `node_view` derives each from the parent (its
container, the node's task and log stream, and the node's own end, which the launcher reports into the attempt).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from chalicelib.domain import digits, job_spec, validation
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import ACTIVE, FAILED, RUNNING, STARTING, SUCCEEDED, TERMINAL, Attempt, Job, node_ended
from chalicelib.domain.validation import fail

MAX_NODES = 1000  # "You can have up to 1,000 nodes in a single job" (AWS Batch user guide, "Node groups")
MAX_NODE_GROUPS = 5  # "up to five distinct node groups for each job" (same page)
STOPPED_WITH_MAIN = "Main node exited; the job's other nodes were stopped"

# -- node ranges -------------------------------------------------------------------------------------------------


def parse_range(target: Any, num_nodes: int, field: str) -> tuple[int, int]:
    """`targetNodes` -> (first, last), both inclusive. "0:3" is nodes 0 to 3, ":3" starts at 0, "4:" ends at the
    last node (NodeRangeProperty.targetNodes in botocore's model); a single index "2" is node 2 alone."""
    if not isinstance(target, str) or not target:
        raise fail(field, "is required: a node range such as 0:3, :3 or 4:")
    start_s, sep, end_s = target.partition(":")
    start = digits.parse(start_s) if start_s else 0
    end = (digits.parse(end_s) if end_s else num_nodes - 1) if sep else start
    if start is None or end is None:
        raise fail(field, f"must be a node range such as 0:3, :3 or 4:; got {target!r}")
    if start > end:
        raise fail(field, f"must not end before it starts; got {target!r}")
    if end >= num_nodes:
        raise fail(field, f"must name nodes below numNodes ({num_nodes}); got {target!r}")
    return start, end


def validate(np: Mapping[str, Any], *, field: str = "nodeProperties") -> None:
    """RegisterJobDefinition's (and, after overrides, SubmitJob's) rules for nodeProperties."""
    if not isinstance(np, Mapping):
        raise fail(field, "must be an object")
    num = np.get("numNodes")
    if not isinstance(num, int) or isinstance(num, bool):
        raise fail(f"{field}.numNodes", "is required")
    validation.in_range(num, 1, MAX_NODES, f"{field}.numNodes")
    main = np.get("mainNode")
    if not isinstance(main, int) or isinstance(main, bool):
        raise fail(f"{field}.mainNode", "is required")
    if not 0 <= main < num:
        raise fail(f"{field}.mainNode", f"must be a node index below numNodes ({num}); got {main}")
    ranges = np.get("nodeRangeProperties")
    if not isinstance(ranges, list) or not ranges:
        raise fail(f"{field}.nodeRangeProperties", "must hold at least one node range")
    if len(ranges) > MAX_NODE_GROUPS:
        raise fail(f"{field}.nodeRangeProperties", f"must hold at most {MAX_NODE_GROUPS} node ranges")
    covered = [False] * num
    for i, r in enumerate(ranges):
        where = f"{field}.nodeRangeProperties[{i}]"
        if not isinstance(r, Mapping):
            raise fail(where, "must be an object")
        first, last = parse_range(r.get("targetNodes"), num, f"{where}.targetNodes")
        for kind in ("ecsProperties", "eksProperties"):
            if r.get(kind) is not None:
                raise fail(f"{where}.{kind}", "is not supported by batchplane in a node range; use container")
        container = r.get("container")
        if not isinstance(container, Mapping):
            raise fail(f"{where}.container", "is required")
        validation.container_properties(container, f"{where}.container", fargate=False)
        covered[first : last + 1] = [True] * (last + 1 - first)
    missing = [n for n, c in enumerate(covered) if not c]
    if missing:
        raise fail(
            f"{field}.nodeRangeProperties",
            f"must cover every node 0:{num - 1}; node {missing[0]} is in no range",
        )


# -- the job's node properties: definition + SubmitJob's nodeOverrides ------------------------------------------


def _containers(np: Mapping[str, Any], num: int) -> list[dict[str, Any]]:
    """Each node's container. Where ranges nest ("0:10" and "4:5"), the narrower one applies (NodeRangeProperty:
    "the 4:5 range properties override the 0:10 properties"); of two equally wide, the later one."""
    best: list[tuple[int, dict[str, Any]] | None] = [None] * num
    for i, r in enumerate(np["nodeRangeProperties"]):
        first, last = parse_range(r["targetNodes"], num, f"nodeProperties.nodeRangeProperties[{i}].targetNodes")
        width = last - first
        for n in range(first, last + 1):
            held = best[n]
            if held is None or width <= held[0]:
                best[n] = (width, r["container"])
    out = []
    for n, held in enumerate(best):
        if held is None:
            raise fail("nodeProperties.nodeRangeProperties", f"must cover every node 0:{num - 1}; node {n} is in none")
        out.append(held[1])
    return out


def effective(jd_np: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The job's nodeProperties: the definition's, with SubmitJob's `nodeOverrides` (numNodes, and per node range
    containerOverrides) applied, as node ranges of identical containers."""
    o = overrides or {}
    num = o.get("numNodes", jd_np["numNodes"])
    if not isinstance(num, int) or isinstance(num, bool):
        raise fail("nodeOverrides.numNodes", "must be an integer")
    validation.in_range(num, 1, MAX_NODES, "nodeOverrides.numNodes")
    main = jd_np["mainNode"]
    if main >= num:
        raise fail("nodeOverrides.numNodes", f"must be above the job definition's mainNode ({main}); got {num}")
    containers = [copy.deepcopy(c) for c in _containers(jd_np, num)]
    for i, po in enumerate(o.get("nodePropertyOverrides") or []):
        where = f"nodeOverrides.nodePropertyOverrides[{i}]"
        first, last = parse_range(po.get("targetNodes"), num, f"{where}.targetNodes")
        for kind in ("ecsPropertiesOverride", "eksPropertiesOverride"):
            if po.get(kind) is not None:
                raise fail(f"{where}.{kind}", "is not supported by batchplane; use containerOverrides")
        co = dict(po.get("containerOverrides") or {})
        co.pop("instanceType", None)  # an EC2 instance type: every node runs on batchplane's one kind of host
        _check_overrides(co, f"{where}.containerOverrides")
        for n in range(first, last + 1):
            containers[n] = job_spec.effective_container(containers[n], co)
    ranges: list[dict[str, Any]] = []
    start = 0
    for n in range(1, num + 1):
        if n == num or containers[n] != containers[start]:
            ranges.append({"targetNodes": f"{start}:{n - 1}", "container": containers[start]})
            start = n
    return {"numNodes": num, "mainNode": main, "nodeRangeProperties": ranges}


def _check_overrides(co: Mapping[str, Any], field: str) -> None:
    if co.get("command") is not None:
        validation.command(co["command"], f"{field}.command")
    validation.environment(co.get("environment") or [], f"{field}.environment")


def num_nodes(np: Mapping[str, Any]) -> int:
    return int(np["numNodes"])


def main_node(np: Mapping[str, Any]) -> int:
    return int(np["mainNode"])


def container_of(np: Mapping[str, Any], index: int) -> dict[str, Any]:
    for r in np["nodeRangeProperties"]:
        first, last = parse_range(r["targetNodes"], num_nodes(np), "nodeProperties")
        if first <= index <= last:
            return dict(r["container"])
    raise InvalidRequest(f"node {index} is in no node range")  # pragma: no cover - effective() covers every node


def totals(np: Mapping[str, Any]) -> tuple[float, int]:
    """vCPUs and MiB of all the nodes together: what the job needs of a compute environment at once."""
    vcpus, memory = 0.0, 0
    for r in np["nodeRangeProperties"]:
        first, last = parse_range(r["targetNodes"], num_nodes(np), "nodeProperties")
        v, m = job_spec.vcpus_and_memory(r["container"])
        vcpus += v * (last - first + 1)
        memory += m * (last - first + 1)
    return vcpus, memory


# -- the nodes at run time -----------------------------------------------------------------------------------------


def node_id(job_id: str, index: int) -> str:
    return f"{job_id}#{index}"


def split_node_id(job_id: str) -> tuple[str, int] | None:
    """`<jobId>#<index>` -> (jobId, index); None for any other id."""
    parent, sep, index = job_id.rpartition("#")
    value = digits.parse(index)
    if not sep or not parent or value is None:
        return None
    return parent, value


def node_task_id(task_id: str, index: int) -> str:
    """A node's task id, derived from the attempt's (32 hex digits, like an ECS task id): stable, so the node's log
    stream is known from the parent's record alone."""
    return hashlib.md5(f"{task_id}#{index}".encode(), usedforsecurity=False).hexdigest()


def node_stream(log_stream: str, task_id: str, index: int) -> str:
    """A node's log stream: the attempt's, with the node's task id (`task_id` may be the task's ARN)."""
    prefix, sep, _ = log_stream.rpartition("/")
    task = task_id.rsplit("/", 1)[-1]
    return f"{prefix}/{node_task_id(task, index)}" if sep else f"{log_stream}-{index}"


def node_environment(job: Job, index: int, attempt: int, compute_environment: str) -> dict[str, str]:
    """A node's environment: the job's reserved variables with the node's id, and the multi-node ones (AWS Batch
    user guide, "Environment variables" of multi-node parallel jobs). The main node's address is added by the
    launcher, on the other nodes, once the main node runs."""
    assert job.node_properties is not None
    np = job.node_properties
    env = job_spec.batch_environment(replace(job, container=container_of(np, index)), attempt, compute_environment)
    env.update(
        {
            "AWS_BATCH_JOB_ID": node_id(job.job_id, index),
            "AWS_BATCH_JOB_NODE_INDEX": str(index),
            "AWS_BATCH_JOB_NUM_NODES": str(num_nodes(np)),
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": str(main_node(np)),
        }
    )
    return env


def node_status(job: Job, index: int, attempt: Attempt | None) -> str:
    """A node's status: the job's, except a node whose task ended while the job ran on (its own end) and, in a
    finished job, the other nodes stopped with the main one (they take the job's status, as the main node decides
    it: "The final job status ... is determined by the final job status of the main node")."""
    record = (attempt.nodes or {}).get(str(index)) if attempt is not None else None
    ended = record if node_ended(record) else None
    if job.node_properties is not None and index == main_node(job.node_properties):
        return job.status  # the job's status is the main node's
    if job.status in (STARTING, RUNNING) and ended is not None:
        return SUCCEEDED if ended.get("exitCode") == 0 else FAILED
    if job.status in TERMINAL and ended is not None and not ended.get("withMain"):
        return SUCCEEDED if ended.get("exitCode") == 0 else FAILED
    return job.status


def task_record(attempt: Attempt, task_arn: str, log_stream: str | None) -> dict[str, str]:
    """What `Attempt.nodes` records of a non-main node's own task (ECS; lifecycle `NodeStarted`): its task id alone
    when its ARN is the main node's task's with that id and its log stream the attempt's stream prefix with it (the
    common case: one cluster, one stream prefix), else the ARN and stream in full. One record per node, so a large
    job's item grows by little (a 1,000-node job by about 45 KB; DynamoDB items hold 400 KB)."""
    prefix, sep, task_id = task_arn.rpartition("/")
    derived = _task_stream(attempt, task_id)
    if sep and attempt.task_id.rpartition("/")[0] == prefix and log_stream in (None, derived):
        return {"taskId": task_id}
    return {"taskArn": task_arn, "logStream": log_stream or derived}


def recorded_task(attempt: Attempt, record: Mapping[str, Any]) -> tuple[str, str] | None:
    """A non-main node's own task, (ARN, log stream), as `task_record` recorded it; None when none is recorded."""
    task_id = record.get("taskId")
    if isinstance(task_id, str):
        return f"{attempt.task_id.rpartition('/')[0]}/{task_id}", _task_stream(attempt, task_id)
    arn, stream = record.get("taskArn"), record.get("logStream")
    return (arn, stream) if isinstance(arn, str) and isinstance(stream, str) else None


def _task_stream(attempt: Attempt, task_id: str) -> str:
    """A task's log stream: the attempt's stream prefix (`<jd>/default`) with the task's id (as the main node's
    task's, lifecycle `_with_task`, and compute/ecs_events.log_stream_name)."""
    prefix, sep, _ = attempt.log_stream.rpartition("/")
    return f"{prefix}/{task_id}" if sep else task_id


def _node_attempt(a: Attempt, index: int, main: bool = False) -> Attempt:
    """A node's part of an attempt. The attempt's task is the main node's (its ARN and log stream); another node's
    is its own task's when the attempt recorded it (ECS: lifecycle `NodeStarted`), else derived from the main
    node's (`node_task_id`), as the local launchers name it."""
    ended = (a.nodes or {}).get(str(index)) or {}
    own = None if main else recorded_task(a, ended)
    task_id, log_stream = own or (_node_arn(a.task_id, index), node_stream(a.log_stream, a.task_id, index))
    return replace(
        a,
        task_id=a.task_id if main else task_id,
        log_stream=a.log_stream if main else log_stream,
        exit_code=ended.get("exitCode"),
        reason=ended.get("reason"),
        status_reason=ended.get("statusReason", a.status_reason),
        stopped_at=ended.get("stoppedAt", a.stopped_at),
        nodes=None,
    )


def at_end(
    held: dict[str, dict[str, Any]] | None, ends: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]] | None:
    """The attempt's nodes once it ended: a node that ended on its own keeps its end; the others get the end the
    main node's stop gives them (`withMain`), with the task recorded for them, if any."""
    if not held and not ends:
        return None
    merged = dict(held or {})
    for i, end in (ends or {}).items():
        if not node_ended(merged.get(i)):
            merged[i] = {**(merged.get(i) or {}), **end}
    return merged


def _node_arn(task: str, index: int) -> str:
    prefix, sep, last = task.rpartition("/")
    return f"{prefix}/{node_task_id(last, index)}" if sep else node_task_id(task, index)


def node_view(job: Job, index: int) -> Job:
    """The node job `<jobId>#<index>` of a multi-node parallel job, as DescribeJobs and ListJobs show it."""
    assert job.node_properties is not None
    np = job.node_properties
    last = job.current or (job.attempts[-1] if job.attempts else None)
    main = index == main_node(np)
    attempts = tuple(_node_attempt(a, index, main) for a in job.attempts)
    if main:  # the main node's end is the attempt's end
        attempts = tuple(
            replace(n, exit_code=a.exit_code, reason=a.reason) for n, a in zip(attempts, job.attempts, strict=True)
        )
    status = node_status(job, index, last)
    return replace(
        job,
        job_id=node_id(job.job_id, index),
        arn=f"{job.arn}#{index}",
        status=status,
        container=container_of(np, index),
        attempts=attempts,
        current=_node_attempt(job.current, index, main) if job.current is not None else None,
        node_index=index,
        vcpus=job_spec.vcpus_and_memory(container_of(np, index))[0],
    )


def published_with_job(job: Job, *, nodes_report_start: bool) -> list[Job]:
    """The node jobs whose state change is published with the job's own. Where the launcher reports each node's
    start (ECS: a non-main node's task runs after the main node's, lifecycle `NodeStarted`), a non-main node that
    is RUNNING but whose task has not reported yet is left out: its RUNNING is published when its task runs,
    carrying that task's ARN and log stream (or, if it never does, the node's end is, with the job's)."""
    views = node_views(job)
    if not nodes_report_start or job.node_properties is None or job.current is None:
        return views
    main, recorded = main_node(job.node_properties), job.current.nodes or {}
    return [v for v in views if v.node_index == main or v.status != RUNNING or str(v.node_index) in recorded]


def node_views(job: Job, status: str | None = None) -> list[Job]:
    if job.node_properties is None:
        return []
    views = [node_view(job, i) for i in range(num_nodes(job.node_properties))]
    if status is None:
        return views
    wanted = ACTIVE if status in ACTIVE else (status,)
    return [v for v in views if v.status in wanted and (status not in ACTIVE or v.status == status)]


def nodes_of(job_ids: Sequence[str]) -> list[tuple[str, int]]:
    return [parsed for j in job_ids if (parsed := split_node_id(j)) is not None]
