"""The ECS launcher: each attempt is one ECS task on the capacity of its compute environment (ADR 0004).
The requests it sends (task definitions, RunTask, the names below) are built in compute/ecs_requests.py.

- Everything about the job comes in the TaskSpec (`Reactor.task_spec`): command, environment, resources, the job
  definition's name and ARN, the effective containerProperties, and the tags to propagate.
- One ECS task definition per job-definition revision and platform: family `batchplane-<jd>-<rev>` (Fargate,
  networkMode awsvpc, task-level cpu/memory) or `batchplane-<jd>-<rev>-ec2` (EC2, networkMode host, like AWS Batch).
  It holds what a submit cannot override (image, roles, volumes, ulimits, ...); the command, environment and resources
  of each job go into RunTask's overrides. Families are looked up (DescribeTaskDefinition) before they are registered
  and cached per process. (A submit's containerOverrides of anything else than command, environment and resources
  do not reach the task: the family is per revision.)
- Capacity: FARGATE / FARGATE_SPOT CEs use the capacity provider of that name; EC2 / SPOT CEs the capacity provider
  `batchplane-<ce>` (an Auto Scaling group created by the infrastructure, sized by `capacity_aws`); unmanaged CEs the
  EC2 launch type on whatever instances are registered to the cluster.
- Identity: RunTask sets `group` = `batchplane:<jobId>:<attempt>` (how task events find their attempt, see
  `ecs_events`), `startedBy` = a 36-character hash of `<jobId>#<attempt>` (how ListTasks finds the attempt's task),
  tags `batchplane:jobId` / `batchplane:attempt` (for people), and `clientToken` = `<jobId>#<attempt>` (hashed when
  longer than 64 characters): ECS runs a request with a known token at most once for 24 hours, so a retried launch
  cannot start a second task. With `precheck` (default) ListTasks is asked first as well, which also covers
  emulators without token support and retries after the token expired.
- A launch ECS rejects for this job (ClientException, InvalidParameterException, overrides over 8192 characters, a
  Fargate size that does not exist, ...) is reported as the attempt's TaskStopped ("Task failed to start") when an
  event sink is given, like the local launcher; without one it raises. Throttling, server and network errors raise
  (Throttled / StoreUnavailable): the launch is retried and the client token keeps it single.
- Nothing runs unobserved on ECS: task state changes reach batchplane through EventBridge whether or not the control
  plane was up. `recover` therefore stops nothing; it answers whether the attempt has a task and, with an event sink,
  re-reports that task's current state (duplicates are harmless). ECS keeps stopped tasks visible for about an
  hour only, so recovery must run well within that.
- Hosts: `attempts_on_instance` finds the attempts whose tasks run on an EC2 instance (ListContainerInstances with
  the `ec2InstanceId ==` filter, checked against DescribeContainerInstances because moto ignores the filter, then
  ListTasks per container instance and DescribeTasks for their groups).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws_clients
from chalicelib.aws_clients import ClientFactory, LazyClient, error_code
from chalicelib.compute import ecs_events, ecs_requests
from chalicelib.compute.ecs_requests import DEFAULT_LOG_GROUP as DEFAULT_LOG_GROUP
from chalicelib.compute.ecs_requests import JsonDict, run_task_request, task_definition_request, task_family
from chalicelib.compute.ecs_requests import LaunchRejected as LaunchRejected
from chalicelib.compute.ecs_requests import capacity_provider_name as capacity_provider_name
from chalicelib.compute.ecs_requests import client_token as client_token
from chalicelib.compute.ecs_requests import started_by as started_by
from chalicelib.compute.port import TaskEventSink, TaskSpec
from chalicelib.domain.errors import BatchplaneError, NotFound, Throttled
from chalicelib.domain.lifecycle import TaskStopped
from chalicelib.domain.model import ComputeEnvironment
from chalicelib.domain.reasons import TASK_END_UNKNOWN

log = logging.getLogger("batchplane.ecs")


MAX_STOP_REASON = 255
CACHE_SIZE = 10_000

# ECS error codes meaning "this request can never succeed as it is": the attempt fails to start.
_REJECTED = frozenset(
    {
        "ClientException",
        "InvalidParameterException",
        "PlatformUnknownException",
        "PlatformTaskDefinitionIncompatibilityException",
        "UnsupportedFeatureException",
    }
)
_NOT_FOUND = frozenset({"ClusterNotFoundException", "ResourceNotFoundException"})
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,32}")


class NoCapacity(Throttled):
    """RunTask placed no task (it answered with failures only, e.g. RESOURCE:MEMORY on the EC2 launch type)."""


CeResolver = Callable[[str], ComputeEnvironment | None]  # by name; None when it does not exist


# -- errors ---------------------------------------------------------------------------------------------------


def translate(e: ClientError | BotoCoreError, action: str) -> BatchplaneError:
    """The domain error for a failed ECS call (raise it `from e`)."""

    def classify(code: str, message: str) -> BatchplaneError | None:
        if code in _NOT_FOUND:
            return NotFound(f"ECS {action}: {code}: {message}")
        if code in _REJECTED:
            return LaunchRejected(f"{code}: {message}")
        return None  # ServerException, AccessDeniedException, LimitExceededException, 5xx: StoreUnavailable

    return aws_clients.translate(e, f"ECS {action}", classify)


# -- the launcher ---------------------------------------------------------------------------------------------


class EcsLauncher:
    def __init__(
        self,
        client_factory: ClientFactory,
        cluster: str,
        resolve_ce: CeResolver,
        *,
        on_event: TaskEventSink | None = None,
        precheck: bool = True,
        log_group: str | None = DEFAULT_LOG_GROUP,
        execution_role_arn: str | None = None,
    ) -> None:
        self._client_factory = client_factory
        self.cluster = cluster
        self.resolve_ce = resolve_ce
        self.on_event = on_event
        self.precheck = precheck
        self.log_group = log_group
        self.execution_role_arn = execution_role_arn
        self._client = LazyClient(client_factory)
        self._lock = threading.Lock()
        self._families: dict[str, str] = {}  # family -> task definition ARN
        self._launched: OrderedDict[str, str] = OrderedDict()  # launch key -> task ARN (this process)

    @property
    def client(self) -> Any:
        return self._client.get()

    # -- Launcher ---------------------------------------------------------------------------------------------

    def launch(self, spec: TaskSpec) -> None:
        if self._cached(spec.key) is not None:
            return
        token = started_by(spec.job_id, spec.attempt)
        if (
            self.precheck and ecs_requests.owner(spec.job_id) == spec.job_id
        ):  # (a node's: its client token keeps it single)
            existing = self._task_arns(token, ("RUNNING", "STOPPED"))
            if existing:
                self._remember(spec.key, existing[0])
                return
        try:
            ce = self.resolve_ce(spec.compute_environment)
            if ce is None:
                raise LaunchRejected(f"compute environment {spec.compute_environment} does not exist")
            definition = self._task_definition(spec, fargate=ce.is_fargate)
            request = run_task_request(spec, ce, definition, self.cluster)
            response = self._call("RunTask", "run_task", request, conflict_ok=True)
        except LaunchRejected as e:
            if self.on_event is None:
                raise
            log.warning("the task of %s was rejected: %s", spec.key, e)
            self.on_event(
                spec.job_id,
                TaskStopped(spec.attempt, None, reason=str(e)[:1024], status_reason=ecs_events.TASK_FAILED_TO_START),
            )
            return
        if response is None:  # ConflictException: this client token already started a task
            log.info("RunTask for %s was already accepted (client token)", spec.key)
            self._remember(spec.key, "")
            return
        tasks = response.get("tasks") or []
        if not tasks:
            failures = "; ".join(
                f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in response.get("failures") or []
            )
            raise NoCapacity(f"RunTask placed no task for {spec.key}: {failures or 'no reason given'}")
        self._remember(spec.key, str(tasks[0]["taskArn"]))

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        """StopTask the attempt's running task(s); its STOPPED event (stoppedReason = reason) reports the stop."""
        for arn in self._task_arns(started_by(job_id, attempt), ("RUNNING",)):
            try:
                stop = {"cluster": self.cluster, "task": arn, "reason": reason[:MAX_STOP_REASON]}
                self._call("StopTask", "stop_task", stop)
            except LaunchRejected as e:  # the task is gone already
                log.info("StopTask %s: %s", arn, e)

    def recover(self, job_id: str, attempt: int) -> bool:
        arns = self.task_arns(job_id, attempt)
        if not arns:
            return False
        if self.on_event is not None:
            for task in self.describe(arns):
                translated = ecs_events.task_state(task)
                if translated is not None and (translated.job_id, translated.attempt) == (job_id, attempt):
                    self.on_event(job_id, translated.event)
        return True

    # -- helpers the runtime may use ----------------------------------------------------------------------------

    def task_arns(self, job_id: str, attempt: int) -> list[str]:
        """The attempt's tasks ECS still knows (running, or stopped within about an hour)."""
        return self._task_arns(started_by(job_id, attempt), ("RUNNING", "STOPPED"))

    def attempts_on_instance(self, instance_id: str) -> list[tuple[str, int, str]]:
        """(job id, attempt, task ARN) of the batchplane tasks meant to run (desiredStatus RUNNING) on an EC2
        instance."""
        if not _INSTANCE_ID.fullmatch(instance_id):
            return []
        task_arns: list[str] = []
        for instance in self._container_instances(instance_id):
            params = {"cluster": self.cluster, "containerInstance": instance, "desiredStatus": "RUNNING"}
            task_arns += [a for a in self._pages("ListTasks", "list_tasks", params, "taskArns") if a not in task_arns]
        found: list[tuple[str, int, str]] = []
        for task in self.describe(task_arns):
            identity = ecs_events.parse_group(task.get("group"))
            if identity is not None:
                found.append((*identity, str(task.get("taskArn", ""))))
        return found

    def check_running(self, attempts: Sequence[tuple[str, int, str]]) -> int:
        """TaskChecker: DescribeTasks of the attempts' task ARNs (100 a call); each task that has STOPPED is reported
        through `on_event` as its event would have been (the lifecycle ignores what it knows already). A task ECS no
        longer knows (MISSING: it stopped about an hour ago or more) ends its attempt with TASK_END_UNKNOWN, its
        other tasks asked to stop (a multi-node job's nodes; none for others): its end cannot be read any more."""
        of = {arn: (job_id, attempt) for job_id, attempt, arn in attempts if arn.startswith("arn:")}
        if self.on_event is None or not of:
            return 0
        reported = 0
        arns = list(of)
        for i in range(0, len(arns), 100):
            request = {"cluster": self.cluster, "tasks": arns[i : i + 100]}
            response = self._call("DescribeTasks", "describe_tasks", request) or {}
            for task in response.get("tasks") or []:
                translated = ecs_events.task_state(task) if task.get("lastStatus") == "STOPPED" else None
                if translated is not None:
                    reported += 1
                    self.on_event(translated.job_id, translated.event)
            for failure in response.get("failures") or []:
                known = of.get(str(failure.get("arn")))
                if known is not None and failure.get("reason") == "MISSING":
                    reported += 1
                    gone = TaskStopped(known[1], None, status_reason=TASK_END_UNKNOWN, stop_nodes=TASK_END_UNKNOWN)
                    self.on_event(known[0], gone)
        return reported

    def describe(self, arns: Iterable[str]) -> list[JsonDict]:
        arns = list(arns)
        tasks: list[JsonDict] = []
        for i in range(0, len(arns), 100):
            chunk = arns[i : i + 100]
            response = self._call("DescribeTasks", "describe_tasks", {"cluster": self.cluster, "tasks": chunk})
            tasks += (response or {}).get("tasks") or []
        return tasks

    # -- internals ----------------------------------------------------------------------------------------------

    def _call(self, action: str, method: str, params: JsonDict, *, conflict_ok: bool = False) -> JsonDict | None:
        """One ECS call with errors translated; None for a ConflictException when `conflict_ok`."""
        try:
            response: JsonDict = getattr(self.client, method)(**params)
            return response
        except ClientError as e:
            if conflict_ok and error_code(e) == "ConflictException":
                return None
            raise translate(e, action) from e
        except BotoCoreError as e:
            raise translate(e, action) from e

    def launched(self, key: str) -> bool:
        """Whether this process launched (or found) the task of a launch key (`TaskSpec.key`); False after ECS
        refused it."""
        return self._cached(key) is not None

    def _cached(self, key: str) -> str | None:
        with self._lock:
            return self._launched.get(key)

    def _remember(self, key: str, task_arn: str) -> None:
        with self._lock:
            self._launched[key] = task_arn
            while len(self._launched) > CACHE_SIZE:
                self._launched.popitem(last=False)

    def _pages(self, action: str, method: str, params: JsonDict, key: str) -> list[str]:
        """Every element of `key` over all pages of a List* call."""
        found: list[str] = []
        while True:
            page = self._call(action, method, params) or {}
            found += [str(x) for x in page.get(key) or []]
            if not page.get("nextToken"):
                return found
            params = {**params, "nextToken": page["nextToken"]}

    def _task_arns(self, token: str, statuses: Iterable[str]) -> list[str]:
        arns: list[str] = []
        for status in statuses:
            params: JsonDict = {"cluster": self.cluster, "startedBy": token, "desiredStatus": status}
            arns += [a for a in self._pages("ListTasks", "list_tasks", params, "taskArns") if a not in arns]
        return arns

    def _container_instances(self, instance_id: str) -> list[str]:
        """The container instances of the cluster on this EC2 instance (normally one; none once deregistered)."""
        params: JsonDict = {"cluster": self.cluster, "filter": f"ec2InstanceId == {instance_id}"}
        candidates = self._pages("ListContainerInstances", "list_container_instances", params, "containerInstanceArns")
        matching: list[str] = []
        for i in range(0, len(candidates), 100):
            request = {"cluster": self.cluster, "containerInstances": candidates[i : i + 100]}
            described = self._call("DescribeContainerInstances", "describe_container_instances", request) or {}
            matching += [
                str(ci["containerInstanceArn"])
                for ci in described.get("containerInstances") or []
                if ci.get("ec2InstanceId") == instance_id
            ]
        return matching

    def _task_definition(self, spec: TaskSpec, *, fargate: bool) -> str:
        """The ARN of the task definition of this job-definition revision: found, or registered once."""
        family = task_family(spec.job_definition_name or "job", spec.revision, fargate=fargate)
        with self._lock:
            known = self._families.get(family)
        if known is not None:
            return known
        arn: str | None = None
        try:
            found = self.client.describe_task_definition(taskDefinition=family)["taskDefinition"]
            if found.get("status", "ACTIVE") == "ACTIVE":
                arn = str(found["taskDefinitionArn"])
        except ClientError as e:
            if error_code(e) != "ClientException":  # ClientException: no such family
                raise translate(e, "DescribeTaskDefinition") from e
        except BotoCoreError as e:
            raise translate(e, "DescribeTaskDefinition") from e
        if arn is None:
            request = task_definition_request(
                spec,
                fargate=fargate,
                region=getattr(getattr(self.client, "meta", None), "region_name", None),
                log_group=self.log_group,
                execution_role_arn=self.execution_role_arn,
            )
            registered = self._call("RegisterTaskDefinition", "register_task_definition", request)
            arn = str((registered or {})["taskDefinition"]["taskDefinitionArn"])
        with self._lock:
            self._families[family] = arn
        return arn
