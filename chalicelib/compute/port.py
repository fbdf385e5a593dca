"""The Launcher port: start and stop one attempt of a job on some compute (local process, ECS task)."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from chalicelib.domain import digits
from chalicelib.domain.ecs_task import TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

# The ECS cluster name of batchplane's local compute, in the task and container-instance ARNs it reports.
LOCAL_CLUSTER = "batchplane-local"
HOST_INSTANCE_ID = uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()).hex  # stable across restarts


def local_container_instance_arn(local_task_arn: str) -> str:
    """This host as an ECS container instance, in the region and account of a task ARN it reported
    (`TaskSpec.local_task_arn`; a recovery knows the task's ARN only)."""
    return f"{local_task_arn.split(':task/', 1)[0]}:container-instance/{LOCAL_CLUSTER}/{HOST_INSTANCE_ID}"


@dataclass(frozen=True)
class TaskSpec:
    """Everything a launcher needs to start one attempt; built by `Reactor.task_spec` from the job. No timeout: the
    control plane times attempts and stops them like any other stop (control/timeouts.py, docs/adr/0025)."""

    job_id: str
    attempt: int
    task_id: str
    command: list[str]  # Ref:: parameters substituted
    environment: dict[str, str]  # the job's variables and the reserved AWS_BATCH_* ones
    log_stream: str
    vcpus: float
    memory: int
    compute_environment: str  # name
    job_definition_name: str = ""
    job_definition_arn: str = ""  # …:job-definition/<name>:<revision>
    # The job's containerProperties (job definition + SubmitJob overrides), wire shape: what a container runtime
    # needs beyond the command and environment above (image, roles, volumes, resource requirements, ...).
    container: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # to put on the task: the job's tags when propagateTags
    region: str = "us-east-1"  # the job's region (from its ARN)
    # EC2 | SPOT | FARGATE | FARGATE_SPOT; None: unmanaged or unknown (ECS then runs the task on EC2)
    compute_environment_type: str | None = None
    # A multi-container job's containers (docs/adr/0028); empty for a single-container job, which runs `command`.
    containers: tuple[TaskContainer, ...] = ()
    # A multi-node parallel job's attempt: one spec per node (each its own task), launched by compute/nodes.py; the
    # main node's index. `network`: the Docker network a node's container joins (set by compute/nodes.py).
    nodes: tuple[TaskSpec, ...] = ()
    main_node: int = 0
    network: str | None = None
    # The run the attempt was claimed in with other children of its array (domain/runs.py): a launcher that runs
    # them on one slot starts each once the one before it ended (compute/local_runs.py); others ignore it.
    run: str | None = None

    @property
    def fargate(self) -> bool:
        return self.compute_environment_type in ("FARGATE", "FARGATE_SPOT")

    @property
    def ecs_environment(self) -> dict[str, str]:
        """What ECS sets in every container of a task (ECS developer guide, "Amazon ECS environment variables"):
        a local launcher adds these to the job's environment (on ECS, ECS itself sets them)."""
        return {
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE" if self.fargate else "AWS_ECS_EC2",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    @property
    def key(self) -> str:
        """The idempotency key of a launch: one attempt of one job starts at most once."""
        return f"{self.job_id}#{self.attempt}"

    @property
    def local_task_arn(self) -> str:
        """The ECS-shaped task ARN a launcher without ECS reports for this attempt (AWS's taskArn is the ECS task's
        ARN): `arn:aws:ecs:<region>:<account>:task/<LOCAL_CLUSTER>/<task id>`, region and account those of the job
        definition. The last segment is the task id, so the attempt's log stream name is unchanged."""
        return f"{self._ecs_prefix}:task/{LOCAL_CLUSTER}/{self.task_id}"

    @property
    def local_container_instance_arn(self) -> str:
        """This host as an ECS container instance (what AWS reports for jobs on EC2 capacity); one id per host."""
        return local_container_instance_arn(self.local_task_arn)

    @property
    def _ecs_prefix(self) -> str:
        parts = self.job_definition_arn.split(":")
        region, account = (parts[3], parts[4]) if len(parts) > 5 else ("us-east-1", "123456789012")
        return f"arn:aws:ecs:{region}:{account}"

    @property
    def revision(self) -> int:
        """The job definition revision (from its ARN; 0 when unknown)."""
        _, _, revision = self.job_definition_arn.rpartition(":")
        return digits.parse(revision) or 0


class CredentialsUnavailable(Exception):
    """A job's `jobRoleArn` asks for credentials that cannot be served (docs/adr/0037): its attempt fails to start,
    `str(e)` being the container's reason, and its retry strategy decides."""


class CredentialVendor(Protocol):
    """AWS credentials for a job's containers the ECS way (compute/credentials.py; docs/adr/0017, 0037).

    A launcher asks for the environment of an attempt before it starts it and releases the attempt once it ended.
    A job without a `jobRoleArn` gets an empty environment; one with a role whose credentials cannot be served makes
    grant() raise CredentialsUnavailable: the launcher fails the attempt's start with its message."""

    @property
    def network(self) -> str | None:
        """The Docker network a container with credentials must join to reach the endpoint (None: not for Docker)."""
        ...

    def grant(self, spec: TaskSpec, *, container: bool) -> dict[str, str]:
        """Variables to add to the attempt's environment (e.g. AWS_CONTAINER_CREDENTIALS_RELATIVE_URI for a
        container, AWS_CONTAINER_CREDENTIALS_FULL_URI on a loopback address for a host process). Never a secret
        key itself. Idempotent per spec.key. Raises CredentialsUnavailable when the job has a role that cannot be
        served (the server has no AWS credentials, or no endpoint its containers can reach)."""
        ...

    def release(self, key: str) -> None:
        """The attempt `key` ("jobId#attempt") ended: its credentials URI answers no more."""
        ...


# Launchers report what their tasks do as the same events the ECS path consumes.
TaskEventSink = Callable[[str, TaskStarted | TaskStopped], None]


class Launcher(Protocol):
    def launch(self, spec: TaskSpec) -> None:
        """Start the attempt unless it was started already (idempotent on spec.key)."""
        ...

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        """Stop the attempt if it runs (SIGTERM, then SIGKILL after a grace period); its stop is reported."""
        ...

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a control-plane crash: was this attempt ever started? If it was and still runs unobserved, it is
        stopped, so it can never run twice."""
        ...


@runtime_checkable
class HostAware(Protocol):
    """A launcher whose tasks run on hosts batchplane can be told about (EC2 instances under ECS)."""

    def attempts_on_instance(self, instance_id: str) -> list[tuple[str, int, str]]:
        """(job id, attempt, task ARN) of every batchplane task still meant to run on the EC2 instance."""
        ...


@runtime_checkable
class TaskChecker(Protocol):
    """A launcher that can read the state of many running tasks at once (ECS: DescribeTasks, 100 a call): the sweep
    asks it about RUNNING attempts it has not heard from for a while, whose STOPPED event may have been lost."""

    def check_running(self, attempts: Sequence[tuple[str, int, str]]) -> int:
        """Read the tasks of these RUNNING attempts ((job id, attempt, task id): a task ARN once ECS reported the
        task) and report, through the launcher's event sink, the end of each that has stopped, or is gone. Returns
        how many ends it reported."""
        ...


@runtime_checkable
class NodeAware(Protocol):
    """A launcher that starts a multi-node attempt's main node alone and its other nodes when told where the main
    node runs (ECS: compute/ecs_nodes.py; the LaunchNodes effect, docs/adr/0027)."""

    def launch_nodes(self, spec: TaskSpec, main_address: str) -> None:
        """Launch every node of the attempt but the main one, with the main node's address (idempotent)."""
        ...


class NullLauncher:
    """Starts nothing: for deployments where another component launches tasks, and for tests.

    `launched` holds each attempt once (a launch is idempotent); `calls` every launch asked for, in order, so a test
    can tell whether the control plane ever asked twice."""

    def __init__(self) -> None:
        self.launched: list[TaskSpec] = []
        self.calls: list[str] = []
        self.stopped: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()

    def launch(self, spec: TaskSpec) -> None:
        with self._lock:
            self.calls.append(spec.key)
            if all(s.key != spec.key for s in self.launched):
                self.launched.append(spec)

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        self.stopped.append((job_id, attempt, reason))

    def recover(self, job_id: str, attempt: int) -> bool:
        return any(s.key == f"{job_id}#{attempt}" for s in self.launched)
