"""A control plane assembled in-process over any item store, driven through the real API path (`gateway.handle`):
the harness of the dispatch, sweep and AWS compute suites. No server, no threads of its own.

`Plane(store, launcher)` holds the Services (with a settable clock), a Reactor and a Dispatcher; `plane.call(...)`
sends one Batch operation as the wire would and returns the parsed body (a failed call fails the test).
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

from chalicelib.api import gateway
from chalicelib.compute.port import Launcher, NullLauncher
from chalicelib.control.context import Services, Settings
from chalicelib.control.dispatch import Dispatcher
from chalicelib.control.react import Reactor
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.store.port import ItemStore
from chalicelib.store.repository import Repository

NOW = 1_700_000_000_000
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
EXEC_ROLE = "arn:aws:iam::123456789012:role/batchplane-execution"


class FakeClock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class SeqIds:
    """Job ids and task ids: unique across threads, readable in failures."""

    def __init__(self, prefix: str = "job") -> None:
        self.prefix = prefix
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            return f"{self.prefix}-{next(self._counter):04d}"


class Plane:
    def __init__(
        self,
        store: ItemStore,
        launcher: Launcher | None = None,
        clock: FakeClock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.launcher: Launcher = launcher or NullLauncher()
        self.svc = Services(
            repo=Repository(store),
            clock=self.clock,
            ids=SeqIds(),
            launcher=self.launcher,
            settings=settings or Settings(),
        )
        self.reactor = Reactor(self.svc, self.launcher)
        self.dispatcher = Dispatcher(self.svc, self.reactor, SeqIds(f"task-{id(self):x}").new_id)

    def on_task_event(self, job_id: str, event: TaskStarted | TaskStopped) -> None:
        """A launcher's event sink."""
        self.reactor.apply(job_id, event)

    # -- the API --

    def call(self, operation: str, **body: Any) -> dict[str, Any]:
        status, _, text = gateway.handle(self.svc, "POST", f"/v1/{operation.lower()}", {}, json.dumps(body))
        payload: dict[str, Any] = json.loads(text)
        assert status == 200, (operation, payload)
        return payload

    def fargate_ce(self, name: str, subnet: str, sg: str, *, spot: bool = True, max_vcpus: int = 256) -> str:
        resources = {
            "type": "FARGATE_SPOT" if spot else "FARGATE",
            "maxvCpus": max_vcpus,
            "subnets": [subnet],
            "securityGroupIds": [sg],
        }
        body = self.call(
            "CreateComputeEnvironment", computeEnvironmentName=name, type="MANAGED", computeResources=resources
        )
        return str(body["computeEnvironmentArn"])

    def spot_ce(self, name: str, subnet: str, sg: str, *, min_vcpus: int = 0, max_vcpus: int = 64, **extra: Any) -> str:
        resources = {
            "type": "SPOT",
            "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED",
            "minvCpus": min_vcpus,
            "maxvCpus": max_vcpus,
            "instanceTypes": ["c5", "m5"],
            "instanceRole": "ecsInstanceRole",
            "subnets": [subnet],
            "securityGroupIds": [sg],
            **extra,
        }
        body = self.call(
            "CreateComputeEnvironment", computeEnvironmentName=name, type="MANAGED", computeResources=resources
        )
        return str(body["computeEnvironmentArn"])

    def queue(self, name: str, *ces: str, priority: int = 1) -> str:
        order = [{"order": i, "computeEnvironment": ce} for i, ce in enumerate(ces, start=1)]
        return str(
            self.call("CreateJobQueue", jobQueueName=name, priority=priority, computeEnvironmentOrder=order)[
                "jobQueueArn"
            ]
        )

    def job_definition(self, name: str, *, fargate: bool = True, vcpus: str = "1", **extra: Any) -> str:
        props: dict[str, Any] = {
            "image": IMAGE,
            "command": ["sh", "-c", "echo hello"],
            "resourceRequirements": [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": EXEC_ROLE,
        }
        body = self.call(
            "RegisterJobDefinition",
            jobDefinitionName=name,
            type="container",
            platformCapabilities=["FARGATE" if fargate else "EC2"],
            containerProperties=props,
            **extra,
        )
        return str(body["jobDefinitionArn"])

    def submit(self, queue: str, jd: str, name: str = "job", **extra: Any) -> str:
        return str(self.call("SubmitJob", jobName=name, jobQueue=queue, jobDefinition=jd, **extra)["jobId"])

    def describe(self, *job_ids: str) -> dict[str, dict[str, Any]]:
        return {j["jobId"]: j for j in self.call("DescribeJobs", jobs=list(job_ids))["jobs"]}

    def describe_one(self, job_id: str) -> dict[str, Any]:
        return self.describe(job_id)[job_id]

    def job(self, job_id: str) -> Job:
        job = self.svc.jobs.get(job_id)
        assert job is not None, job_id
        return job

    def dispatch(self) -> int:
        """Dispatch cycles until one places nothing. Returns the number of jobs placed."""
        placed = 0
        while n := self.dispatcher.cycle():
            placed += n
        return placed
