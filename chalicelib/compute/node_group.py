"""A multi-node attempt as `compute/nodes.NodeLauncher` runs it (docs/adr/0027): its spec per node
(`attempt_spec`) and the state of its nodes (`NodeGroup`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypedDict

from chalicelib.compute.port import TaskSpec, local_container_instance_arn
from chalicelib.domain import job_spec, nodes
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import TaskStopped

RESTARTED = "Task failed: the server restarted while the multi-node job ran"


class Task(TypedDict, total=False):
    """A task's identity as TaskStarted/TaskStopped keywords."""

    task_arn: str | None
    container_instance_arn: str | None
    log_stream: str | None


def attempt_spec(job: Job, spec: TaskSpec) -> TaskSpec:
    """A multi-node job's attempt: the job's spec with one spec per node (its container, command, environment,
    resources, task id and log stream)."""
    assert job.node_properties is not None
    np = job.node_properties
    specs = []
    for i in range(nodes.num_nodes(np)):
        container = nodes.container_of(np, i)
        vcpus, memory = job_spec.vcpus_and_memory(container)
        specs.append(
            replace(
                spec,
                job_id=nodes.node_id(job.job_id, i),
                task_id=nodes.node_task_id(spec.task_id.rsplit("/", 1)[-1], i),  # (a RUNNING job's is its ARN)
                command=job_spec.render_command(list(container.get("command") or []), job.parameters),
                environment=nodes.node_environment(job, i, spec.attempt, spec.compute_environment),
                log_stream=nodes.node_stream(spec.log_stream, spec.task_id, i),
                vcpus=vcpus,
                memory=memory,
                container=container,
            )
        )
    return replace(spec, nodes=tuple(specs), main_node=nodes.main_node(np))


@dataclass
class NodeGroup:
    """A multi-node attempt's nodes, as `NodeLauncher` runs them (launched, started, ended) and ends it."""

    spec: TaskSpec
    network: str | None = None
    launched: set[int] = field(default_factory=set)
    started: set[int] = field(default_factory=set)
    ended: dict[int, TaskStopped] = field(default_factory=dict)
    main_end: TaskStopped | None = None
    early: set[int] = field(default_factory=set)  # nodes that ended on their own while the main node ran
    failure: str | None = None  # a node failed to start, or the server restarted: the attempt fails
    stop_reason: str | None = None
    ending: bool = False
    recovered: bool = False
    done: bool = False
    removals: list[Callable[[], None]] = field(default_factory=list)  # nodes' `recorded`: run after the job's end
    journalled: tuple[str, str] | None = None  # recovered: its task ARN and main node's stream (its spec has neither)
    awaiting: set[int] = field(default_factory=set)  # recovered: nodes never created, launched once the spec comes
    adopted: bool = True  # False: recovered with nodes `awaiting` their spec, which the sweep's `launch` gives
    collected: dict[int, TaskStopped] | None = None  # recovering processes: the nodes' ends reported (nodes_recovery)

    @property
    def main(self) -> int:
        return self.spec.main_node

    def task(self) -> Task:
        """The attempt's task (its ARNs, its main node's log stream) as a TaskStarted/TaskStopped's keywords: what
        its live events carry, and its recovery's (none when unknown: an earlier version's journal line)."""
        if self.journalled is not None:
            arn, stream = self.journalled
        elif self.spec.task_id:  # (a RUNNING job's task id is its ARN, for a launch the recovery completes)
            task, stream = self.spec.task_id, self.spec.nodes[self.main].log_stream
            arn = task if task.startswith("arn:") else self.spec.local_task_arn
        else:
            return Task()
        return {"task_arn": arn, "container_instance_arn": local_container_instance_arn(arn), "log_stream": stream}


def ending_reason(group: NodeGroup) -> str:
    """Why a node of an ending attempt is stopped: the attempt's failure, a stop asked for, or its main node's end."""
    return group.failure or group.stop_reason or (nodes.STOPPED_WITH_MAIN if group.main_end else RESTARTED)
