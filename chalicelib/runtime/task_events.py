"""Task and host events from AWS (EventBridge) applied to jobs (spec §6.2, §6.3). The AWS runtime's door for them:
it reads ECS's and EC2's event shapes (compute/ecs_events.py), so it sits in runtime/, not in control/, which
imports no adapter (issue 15, `make lint`).

- "ECS Task State Change": translated by `compute.ecs_events` (the task's `group` names job and attempt) and applied
  to the job. RUNNING -> TaskStarted, STOPPED -> TaskStopped with the essential container's exit code and reason and
  the task's stoppedReason as statusReason; the attempt records the task ARN and its log stream (a multi-node
  job's other nodes' tasks too, in the attempt's `nodes`: docs/adr/0027).
- "EC2 Spot Instance Interruption Warning" (any instance-action) and "EC2 Instance State-change Notification" with
  state `terminated`: the attempts whose tasks the launcher finds on that instance fail with
  `Host EC2 (instance i-…) terminated.` (exit code none), so their retry strategy decides: retried while attempts
  remain unless an evaluateOnExit rule says EXIT; `{"onStatusReason": "Host EC2*", "action": "RETRY"}` matches. The
  tasks are then asked to stop with that reason: on a warning the host still runs for about two minutes, and the
  next attempt must not overlap a task that keeps running.
- Fargate Spot needs no EC2 event: the interruption is a STOPPED task event, stopCode `TerminationNotice`,
  stoppedReason `Your Spot Task was interrupted.` (ECS's text, copied unchanged as AWS Batch does); exit code 143
  when the container ends on SIGTERM, 137 on SIGKILL. Rule for it: `{"onStatusReason": "Your Spot Task*",
  "action": "RETRY"}`. (The two-minute warning is a RUNNING event with desiredStatus STOPPED: it changes nothing.)

Every event may arrive twice and out of order. Both handlers only apply lifecycle events, which ignore what no longer
applies (a duplicate, a RUNNING after the STOPPED, an attempt that is no longer current), so redelivery changes
nothing; a stop asked twice is harmless. One exception writes nothing either: a multi-node attempt that is over and
hears from its main node's STOPPED again, or from a node task still running, asks its tasks to stop again (the
repair of a crash between the end's write and its StopTask).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chalicelib.compute import ecs_events
from chalicelib.compute.ecs_nodes import EcsNodeLauncher
from chalicelib.compute.port import HostAware
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle, nodes
from chalicelib.domain.jobs import Job
from chalicelib.domain.reasons import TASK_FAILED_TO_START, host_terminated_reason

log = logging.getLogger("batchplane.task_events")


def on_ecs_task_event(svc: Services, reactor: Reactor, envelope: Mapping[str, Any]) -> None:
    """Apply one "ECS Task State Change" envelope; other events and tasks batchplane did not start are ignored."""
    translated = ecs_events.task_event(envelope)
    if translated is None:
        return
    after = apply_task_event(svc, reactor, translated.job_id, translated.event, envelope.get("detail") or {})
    if after is None:
        log.info("task event for unknown job %s ignored", translated.job_id)


def apply_task_event(
    svc: Services,
    reactor: Reactor,
    job_id: str,
    event: lifecycle.TaskStarted | lifecycle.TaskStopped,
    task: Mapping[str, Any] | None = None,
) -> Job | None:
    """Apply a task's event to its job; a multi-node job's node task (`<jobId>#<index>`, docs/adr/0027) to its job.
    This only translates: the lifecycle decides, `Reactor.run_effects` does (ADR 0023). The main node RUNNING is
    the job's TaskStarted with the main node's address (the lifecycle asks LaunchNodes: the other nodes' tasks); the
    main node STOPPED is the job's TaskStopped asking the other nodes' tasks be stopped; another node's RUNNING
    records its task (NodeStarted: its ARN and log stream, once); another node that stops is the node's own end
    (NodeStopped, with its task), or, when it could not start, the attempt's failure (all nodes run, or none)."""
    parsed = nodes.split_node_id(job_id)
    if parsed is None:
        return reactor.apply(job_id, event)
    parent_id, index = parsed
    job = svc.jobs.get(parent_id)
    if job is None or job.node_properties is None:
        return None
    main = nodes.main_node(job.node_properties)
    current = job.current
    if current is None or current.number != event.attempt:
        # An attempt that is over. Its main node's STOPPED again (a redelivery), or a node's task running and not
        # being stopped: its nodes' tasks are asked to stop again (the lifecycle decides: a crash between the end's
        # write and its StopTask, or a node launched as the attempt ended that the stop's ListTasks, eventually
        # consistent, did not list). The other nodes' STOPPED events after the end are expected and ask nothing.
        running = isinstance(event, lifecycle.TaskStarted) and (task or {}).get("desiredStatus") != "STOPPED"
        if running or (index == main and isinstance(event, lifecycle.TaskStopped)):
            again = lifecycle.TaskStopped(event.attempt, None, stop_nodes=nodes.STOPPED_WITH_MAIN)
            return reactor.apply_all(parent_id, (again,), read=job)
        return job
    if isinstance(event, lifecycle.TaskStarted):
        if index != main:  # its task, recorded once (a repeat, or a RUNNING after its STOPPED, writes nothing)
            if event.task_arn is None:
                return job
            started = lifecycle.NodeStarted(event.attempt, index, event.task_arn, event.log_stream)
            return reactor.apply_all(parent_id, (started,), read=job)
        launcher = reactor.launcher
        address = launcher.address(task or {}) if isinstance(launcher, EcsNodeLauncher) else None
        if address is None:
            why = "CannotStartContainerError: the main node's private address is unknown"
            failed = lifecycle.TaskStopped(event.attempt, None, status_reason=why, stop_nodes=why)
            return reactor.apply_all(parent_id, (event, failed), read=job)
        return reactor.apply(parent_id, replace(event, main_address=address))
    if index == main:  # the others end with it (their own STOPPED events come after the job's end: ignored)
        with_main = {"statusReason": nodes.STOPPED_WITH_MAIN, "withMain": True}
        others = {str(i): with_main for i in range(nodes.num_nodes(job.node_properties)) if i != main}
        return reactor.apply(parent_id, replace(event, stop_nodes=nodes.STOPPED_WITH_MAIN, nodes=others))
    if event.status_reason == TASK_FAILED_TO_START:
        why = f"Node {index} failed to start: {event.reason or event.status_reason}"
        return reactor.apply(parent_id, lifecycle.TaskStopped(event.attempt, None, status_reason=why, stop_nodes=why))
    node_end = lifecycle.NodeStopped(
        event.attempt, index, event.exit_code, event.reason, event.status_reason, event.task_arn, event.log_stream
    )
    return reactor.apply(parent_id, node_end)


def on_ec2_event(svc: Services, reactor: Reactor, envelope: Mapping[str, Any]) -> None:
    """Fail the attempts running on an EC2 instance that is being reclaimed or was terminated."""
    instance = ecs_events.spot_interruption(envelope) or ecs_events.instance_terminated(envelope)
    if instance is None:
        return
    launcher = reactor.launcher
    if not isinstance(launcher, HostAware):
        log.warning("EC2 event for %s ignored: the launcher does not run tasks on EC2 instances", instance)
        return
    reason = host_terminated_reason(instance)
    for job_id, attempt, task_arn in launcher.attempts_on_instance(instance):
        lost = lifecycle.TaskStopped(attempt, None, status_reason=reason, task_arn=task_arn or None)
        reactor.apply(job_id, lost)
        reactor.launcher.stop(job_id, attempt, reason)
