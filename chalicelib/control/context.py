"""What every use case receives: settings read once, injected clock and ids, the repository, the event sink."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chalicelib.compute.logs_port import LogStore
from chalicelib.compute.port import LOCAL_CLUSTER, Launcher, NullLauncher
from chalicelib.domain.host_access import HostAccess
from chalicelib.domain.model import ComputeEnvironment
from chalicelib.domain.validation import Limits
from chalicelib.events.port import EventSink, LocalSchedules, NullSink, SchedulePort
from chalicelib.store.jobs import JobRepository
from chalicelib.store.repository import Repository

if TYPE_CHECKING:
    from chalicelib.control.react import Reactor


@dataclass(frozen=True)
class Settings:
    account: str = "123456789012"
    default_region: str = "us-east-1"
    limits: Limits = field(default_factory=Limits)
    # What jobs may reach on the host (domain/host_access.py). The local runtime always sets one (nothing allowed
    # unless `batchplane up --allow-…` says so); None on AWS, where jobs run on ECS and there is no host of ours.
    host_access: HostAccess | None = None
    # The ECS cluster (name or ARN) jobs run in: DescribeComputeEnvironments' ecsClusterArn of every environment.
    ecs_cluster: str = LOCAL_CLUSTER
    # A queue or compute environment being deleted is removed only by a pass that starts this long after its
    # DELETING marker: longer than any request that may still write a job it read before (docs/adr/0021).
    deletion_grace_ms: int = 60_000
    # Price finished attempts in US dollars (domain/cost.py): on AWS, where the jobs ran on AWS's capacity; the
    # local runtime reports resource-seconds only.
    price_jobs: bool = False
    # An array's children are written at most this many ahead of its finished ones; the rest are views of the
    # parent until their turn (domain/arrays.py, docs/adr/0031). 0: every child written at submit, as before.
    array_window: int = 1_000


class Clock(Protocol):
    def now_ms(self) -> int: ...


class IdFactory(Protocol):
    def new_id(self) -> str: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class UuidFactory:
    def new_id(self) -> str:
        return str(uuid.uuid4())


@dataclass(frozen=True)
class Services:
    repo: Repository
    settings: Settings = field(default_factory=Settings)
    clock: Clock = field(default_factory=SystemClock)
    ids: IdFactory = field(default_factory=UuidFactory)
    # Called after a write that may make work schedulable (the local runtime wakes its dispatcher here).
    wake: Callable[[], None] = field(default=lambda: None)
    events: EventSink = field(default_factory=NullSink)
    logs: LogStore | None = None  # the local runtime's log streams; None where CloudWatch Logs holds them
    launcher: Launcher = field(default_factory=NullLauncher)
    # Runs deferred work (fan-out to dependents, array children): a worker thread locally, inline by default.
    defer: Callable[[Callable[[], None]], None] = field(default=lambda work: work())
    # Where the effects a committed change carries (`domain.effects.effects_of`) run. False: in-process, right after
    # the write (the local runtime). True (AWS): from the table's stream record, the durable outbox (runtime/aws,
    # docs/adr/0006, 0023); only commands (Launch, StopTask) run where the event was applied.
    effects_from_stream: bool = False
    # Where schedule triggers tick: the local runtime's timer reads the store (nothing to register); on AWS an
    # EventBridgeSchedules adapter creates one EventBridge Scheduler schedule per trigger (events/schedules.py).
    schedules: SchedulePort = field(default_factory=LocalSchedules)
    # Takes a deleted managed EC2/SPOT compute environment's instances away (AWS: its Auto Scaling group to zero,
    # compute/capacity_aws.py); nothing to do locally, where jobs run as processes (control/deletion.py).
    release_capacity: Callable[[ComputeEnvironment], None] = field(default=lambda ce: None)
    # The plane's one reactor, which the composition root (runtime/plane.py) builds from these Services and so hands
    # over late-bound, like `wake`; None (Services a test builds bare): `react.reactor_of` builds one per use.
    plane_reactor: Callable[[], Reactor] | None = None

    @property
    def jobs(self) -> JobRepository:
        return JobRepository(self.repo.items)


@dataclass(frozen=True)
class RequestContext:
    """Per request: the region ARNs are minted in (from the SigV4 credential scope, else the default)."""

    region: str
