"""Multi-node parallel jobs on ECS (docs/adr/0027): one ECS task per node, on the stack's EC2 capacity.

`EcsNodeLauncher` wraps the `EcsLauncher`. A multi-node attempt's Launch runs the main node's task only; when its
"ECS Task State Change" RUNNING arrives, `runtime/task_events.py` learns the main node's private address from the
task (`address`) and applies the main node's TaskStarted with it; the lifecycle decides the other nodes' launch
(LaunchNodes), which `Reactor.run_effects` carries out here (`launch_nodes`). Every node's task carries the group
`batchplane:<jobId>#<index>:<attempt>` (its events name the node) and the `startedBy` of the job's attempt (compute/
ecs.py), so `stop`, `recover` and `task_arns` of the job reach every node's task. Each node's RunTask has its own
client token (`<jobId>#<index>#<attempt>`): a redelivered event launches no node twice.

The address: the task's elastic network interface (`attachments[].details` `privateIPv4Address`, awsvpc), else the
private IP of the EC2 instance the task runs on (batchplane's EC2 task definitions use the host network mode): its
container instance (DescribeContainerInstances) gives the instance id, EC2 DescribeInstances its PrivateIpAddress.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws_clients import ClientFactory, LazyClient
from chalicelib.compute.ecs import EcsLauncher
from chalicelib.compute.nodes import MAIN_ADDRESS
from chalicelib.compute.port import TaskEventSink, TaskSpec
from chalicelib.domain import nodes

log = logging.getLogger("batchplane.ecs_nodes")


class EcsNodeLauncher:
    """The Launcher port on ECS for every job: multi-node attempts as one task per node, others unchanged."""

    def __init__(self, ecs: EcsLauncher, ec2: ClientFactory) -> None:
        self.ecs = ecs
        self._ec2 = LazyClient(ec2)

    @property
    def on_event(self) -> TaskEventSink | None:
        return self.ecs.on_event

    @on_event.setter
    def on_event(self, sink: TaskEventSink | None) -> None:
        self.ecs.on_event = sink

    def launch(self, spec: TaskSpec) -> None:
        if not spec.nodes:
            self.ecs.launch(spec)
            return
        self.ecs.launch(spec.nodes[spec.main_node])  # the others once it runs (launch_nodes)

    def launch_nodes(self, spec: TaskSpec, main_address: str) -> None:
        """The LaunchNodes effect: every node's task but the main node's, with its address. Each node's RunTask has
        its own client token, so asking twice starts nothing twice. A node ECS refuses fails the attempt (reported
        through `on_event`): the nodes after it are not launched (the attempt's tasks are being stopped)."""
        for i, node in enumerate(spec.nodes):
            if i == spec.main_node:
                continue
            self.ecs.launch(replace(node, environment={**node.environment, MAIN_ADDRESS: main_address}))
            if not self.ecs.launched(node.key):
                return

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        self.ecs.stop(job_id, attempt, reason)  # every node's task: they share the attempt's startedBy

    def recover(self, job_id: str, attempt: int) -> bool:
        return self.ecs.recover(job_id, attempt)

    def task_arns(self, job_id: str, attempt: int) -> list[str]:
        return self.ecs.task_arns(job_id, attempt)

    def check_running(self, attempts: Sequence[tuple[str, int, str]]) -> int:
        return self.ecs.check_running(attempts)  # a multi-node job's: its main node's task (its events name the node)

    def attempts_on_instance(self, instance_id: str) -> list[tuple[str, int, str]]:
        """As EcsLauncher's, a node's task standing for its job (the host lost takes the whole attempt)."""
        found: dict[tuple[str, int], str] = {}
        for job_id, attempt, arn in self.ecs.attempts_on_instance(instance_id):
            parsed = nodes.split_node_id(job_id)
            found.setdefault((parsed[0] if parsed else job_id, attempt), arn)
        return [(job_id, attempt, arn) for (job_id, attempt), arn in found.items()]

    def address(self, task: Mapping[str, Any]) -> str | None:
        """The private IPv4 address a task's peers reach it at; None when it cannot be known (yet)."""
        for attachment in task.get("attachments") or []:
            for detail in attachment.get("details") or []:
                if detail.get("name") == "privateIPv4Address" and detail.get("value"):
                    return str(detail["value"])
        instance = task.get("containerInstanceArn")
        if not isinstance(instance, str) or not instance:
            return None
        try:
            described = self.ecs.client.describe_container_instances(
                cluster=self.ecs.cluster, containerInstances=[instance]
            )
            found = described.get("containerInstances") or []
            ec2_id = found[0].get("ec2InstanceId") if found else None
            if not ec2_id:
                return None
            reservations = self._ec2.get().describe_instances(InstanceIds=[ec2_id]).get("Reservations") or []
            for reservation in reservations:
                for instance_detail in reservation.get("Instances") or []:
                    if instance_detail.get("PrivateIpAddress"):
                        return str(instance_detail["PrivateIpAddress"])
        except (ClientError, BotoCoreError):
            log.exception("the address of task %s is unknown", task.get("taskArn"))
        return None
