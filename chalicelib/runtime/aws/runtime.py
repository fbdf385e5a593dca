"""The AWS runtime: the entry points behind every Lambda of app.py (docs/adr/0006), driving the plane the composition
root built (runtime/plane.py `build_aws`: the DynamoDB store, the EventBridge sink, the ECS launcher, the Services,
the reactor and the dispatcher).

app.py only parses what Lambda hands it and calls one method here; this module ties the entry points to the same
control/ code the local runtime runs.

| Lambda (app.py) | trigger | runs |
|---|---|---|
| api_handler | API Gateway (REST or HTTP API) or the function URL (IAM auth) | the Batch API; Launch/StopTask inline |
| on_job_change | the table's stream (job records in a state that needs a reaction: `stream.filter_patterns`) |
  `on_stream`: publish (`BATCHPLANE_STATE_CHANGE_EVENTS`), dependents, parent, array children, wake if work waits |
| dispatch | SQS FIFO "wake" queue, one message group | `on_dispatch`: scheduling cycles, one at a time |
| on_ecs_task_event | EventBridge: ECS Task State Change, RUNNING and STOPPED | runtime.task_events.on_ecs_task_event |
| on_ec2_event | EventBridge: EC2 Spot warning, instance terminated | runtime.task_events.on_ec2_event |
| sweep | schedule, every minute | control.sweep.sweep, then a wake (repairs lost wakes) |
| reconcile_capacity | schedule, every minute | control.capacity.reconcile |
| on_object_created | EventBridge: S3 Object Created | control.triggers.on_object_created |
| on_schedule | EventBridge Scheduler (direct invoke) | control.triggers.on_schedule |

Settings are read once (`AwsConfig.from_environment`, config.py); boto3 clients are made on first use (`Clients`,
clients.py); every entry point reads each resource record at most once (store/invocation_cache.py). The one
runtime per Lambda container is built by the composition root (runtime/plane.py). What invokes a Lambda, and why
no more than that: docs/adr/0009.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from chalicelib.compute.capacity_port import CapacityGroups
from chalicelib.control.context import Services
from chalicelib.control.dispatch import Dispatcher
from chalicelib.control.react import STATE_CHANGE, Reactor
from chalicelib.domain.effects import effects_of
from chalicelib.domain.errors import StoreUnavailable
from chalicelib.domain.job_detail import job_detail
from chalicelib.domain.jobs import RUNNABLE, Job
from chalicelib.events.eventbridge import Event, EventBridgeSink, EventsUnavailable
from chalicelib.runtime import stream
from chalicelib.runtime.aws.adapters import WakeQueue
from chalicelib.runtime.aws.clients import Clients
from chalicelib.runtime.aws.config import AwsConfig
from chalicelib.store.invocation_cache import InvocationCache
from chalicelib.store.port import ItemStore

log = logging.getLogger("batchplane.aws")

MAX_CYCLES = 50  # per dispatch invocation; a busy queue hands over to the next invocation with a fresh wake
RESERVE_MS = 20_000  # stop cycling when less than this is left of the invocation

__all__ = ["AwsRuntime", "Controls", "StreamBatch"]

# -- the control functions the entry points call ------------------------------------------------------------------

EnvelopeHandler = Callable[[Services, Reactor, Mapping[str, Any]], object]


def _late(module: str, name: str) -> Callable[..., Any]:
    """A control function imported when first called (cold starts load only what their Lambda uses)."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args)

    call.__name__ = name
    return call


@dataclass(frozen=True)
class Controls:
    """What each entry point calls in control/. Injected, so tests can replace any of them."""

    on_ecs_task_event: EnvelopeHandler = field(
        default_factory=lambda: _late("chalicelib.runtime.task_events", "on_ecs_task_event")
    )
    on_ec2_event: EnvelopeHandler = field(
        default_factory=lambda: _late("chalicelib.runtime.task_events", "on_ec2_event")
    )
    sweep: Callable[[Services, Reactor, int, Any], object] = field(  # the last: a control.sweep.SweepPolicy
        default_factory=lambda: _late("chalicelib.control.sweep", "sweep")
    )
    reconcile: Callable[[Services, CapacityGroups], object] = field(
        default_factory=lambda: _late("chalicelib.control.capacity", "reconcile")
    )
    on_object_created: Callable[[Services, Reactor, str, str, str], list[str]] = field(
        default_factory=lambda: _late("chalicelib.control.triggers", "on_object_created")
    )
    on_schedule: Callable[[Services, Reactor, str], str | None] = field(
        default_factory=lambda: _late("chalicelib.control.triggers", "on_schedule")
    )


# -- the runtime ----------------------------------------------------------------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _invocation(entry: Callable[Concatenate[AwsRuntime, _P], _R]) -> Callable[Concatenate[AwsRuntime, _P], _R]:
    """An entry point: it runs in a scope of the invocation cache (`InvocationCache`)."""

    def run(self: AwsRuntime, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.items.scope():
            return entry(self, *args, **kwargs)

    run.__name__, run.__doc__ = entry.__name__, entry.__doc__
    return run


class StreamBatch:
    """How the stream handler delivers Publish and WakeDispatcher (control/react.py `Delivery`): collected per
    record, kept once the record's other effects all ran, then sent for the whole batch: one PutEvents call for the
    state changes `BATCHPLANE_STATE_CHANGE_EVENTS` keeps, at most one wake (docs/adr/0009, 0010)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.published: list[tuple[int, Event]] = []  # (record, event)
        self.wakes: list[tuple[int, bool]] = []  # (record, whether it made a job RUNNABLE)

    def record(self, index: int, before: Job | None) -> _RecordDelivery:
        return _RecordDelivery(self.mode, index, before)

    def done(self, delivery: _RecordDelivery) -> None:
        self.published += delivery.published
        self.wakes += delivery.wakes


class _RecordDelivery:
    def __init__(self, mode: str, index: int, before: Job | None) -> None:
        self.mode, self.index, self.before = mode, index, before
        self.published: list[tuple[int, Event]] = []
        self.wakes: list[tuple[int, bool]] = []

    def publish(self, job: Job) -> None:
        if stream.publishes(self.mode, job):
            self.published.append((self.index, Event(STATE_CHANGE, [job.arn], job_detail(job))))

    def wake(self, job: Job) -> None:
        """New work (the job became RUNNABLE) always wakes; a job that left RUNNABLE, STARTING or RUNNING freed
        capacity or a queue head, which wakes only if work waits; a job that ends from PENDING frees nothing."""
        if job.status == RUNNABLE:
            self.wakes.append((self.index, True))
        elif self.before is not None and self.before.status in stream.SCHEDULED:
            self.wakes.append((self.index, False))


class AwsRuntime:
    """The Lambda entry points: the driver of the AWS plane the composition root built (runtime/plane.py
    `build_aws`), one per Lambda container."""

    def __init__(
        self,
        config: AwsConfig,
        *,
        clients: Clients,
        store: ItemStore,
        items: InvocationCache,
        services: Services,
        reactor: Reactor,
        dispatcher: Dispatcher,
        sink: EventBridgeSink,
        wakes: WakeQueue,
        capacity: CapacityGroups,
        controls: Controls | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.store = store
        self.items = items  # every entry point runs in a scope of it (`_invocation`)
        self.services = services
        self.launcher = services.launcher
        self.reactor = reactor
        self._dispatcher = dispatcher
        self.sink = sink
        self.wakes = wakes
        self.capacity = capacity  # the CapacityGroups of reconcile_capacity
        self.controls = controls or Controls()

    def reindex_legacy(self) -> int:
        """Move the STARTING and RUNNING jobs an earlier version indexed per status into the shared ACTIVE partition
        (docs/adr/0013). Run once per Lambda container before it serves anything (`plane.aws_runtime()`): every
        reader of the active jobs (dispatch, capacity reconcile, array summaries) would otherwise not see them until
        the next sweep, and the reconcile could scale an EC2 group in under them. The sweep still moves them every
        minute, for jobs a container of the previous version wrote during a deployment. Returns the jobs moved."""
        return sum(self.services.jobs.move_legacy_active(q.name) for q in self.services.repo.list_jqs())

    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    def send_wake(self, dedup: str | None = None) -> None:
        """Ask for a dispatch cycle. Raises StoreUnavailable when SQS does not take the message."""
        self.wakes.send(dedup)

    def wake_dispatcher(self) -> None:
        """Services.wake: best effort (the write that asked for it is committed; the sweep wakes every minute)."""
        self.wakes.wake()

    # -- entry points -------------------------------------------------------------------------------------------

    @_invocation
    def on_stream(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        """One batch of the table's stream: each job record's effects (`effects_of(old, new)`) run through the
        reactor's one executor, state changes published and the dispatcher woken once for the batch (`StreamBatch`).
        Returns Lambda's partial-batch response: the first record whose effects did not all happen (it and every
        later record of the shard are delivered again)."""
        records = list(event.get("Records") or [])
        changes = [stream.decode(r) for r in records]
        batch = StreamBatch(self.config.state_change_events)
        failed: int | None = None
        for i, change in enumerate(changes):
            if change is None or change.new is None:
                continue
            delivery = batch.record(i, change.old)
            try:
                self.reactor.run_effects(change.new, effects_of(change.old, change.new), delivery)
            except Exception:
                log.exception("effects of %s (record %s) failed", change.new.job_id, change.sequence)
                failed = i
                break
            batch.done(delivery)
        try:
            self.sink.publish_all([e for _, e in batch.published])
        except EventsUnavailable as e:
            log.exception("publishing job state changes failed")
            first = batch.published[e.index][0]
            failed = min(failed, first) if failed is not None else first
        wakes = [w for w in batch.wakes if failed is None or w[0] < failed]
        # A job that became RUNNABLE needs a dispatch cycle. One that left RUNNABLE/STARTING/RUNNING freed capacity
        # or a queue's head, which only matters to jobs waiting for it: none waiting, no wake (docs/adr/0009).
        if wakes and (any(new_work for _, new_work in wakes) or self._work_waiting()):
            wake_from = wakes[0][0]
            try:
                last = next(c for c in reversed(changes[: failed if failed is not None else len(changes)]) if c)
                self.send_wake(dedup=last.sequence or None)
            except StoreUnavailable:
                log.exception("waking the dispatcher failed")
                failed = wake_from if failed is None else min(failed, wake_from)
        if failed is None:
            return {"batchItemFailures": []}
        sequence = str((records[failed].get("dynamodb") or {}).get("SequenceNumber", ""))
        return {"batchItemFailures": [{"itemIdentifier": sequence}]}

    def _work_waiting(self) -> bool:
        """Is a job RUNNABLE in a queue not being deleted (top-level or array child; a DISABLED queue still runs the
        jobs it holds)? Asked after a job freed capacity, once per stream batch: a job that becomes RUNNABLE later
        wakes the dispatcher itself. Any doubt (an error) says yes: a wake too many costs a cycle, a wake too few
        costs up to the sweep's minute."""
        try:
            for queue in self.services.repo.list_jqs():
                if queue.deleting:
                    continue
                for children in (False, True):
                    if self.services.jobs.in_queue(queue.name, RUNNABLE, children=children, limit=1):
                        return True
        except Exception:
            log.exception("checking for RUNNABLE jobs failed; waking the dispatcher")
            return True
        return False

    @_invocation
    def on_dispatch(self, remaining_ms: Callable[[], int] | None = None) -> int:
        """Scheduling cycles until one places nothing or leaves nothing placeable (`Dispatcher.cycles`: a cycle
        whose reads were not full saw all the work there was, so no second cycle just to find that out). One
        invocation at a time (FIFO, one message group), so the capacity one cycle sees is not being spent by
        another. Returns the number of jobs placed."""
        ran, stopped = 0, False

        def stop() -> bool:  # asked after each cycle that placed jobs and may have left more to place
            nonlocal ran, stopped
            ran += 1
            stopped = ran >= MAX_CYCLES or (remaining_ms is not None and remaining_ms() < RESERVE_MS)
            return stopped

        try:
            placed = self.dispatcher().cycles(stop)
        except Exception:  # failing would stall the FIFO group for a visibility timeout; the sweep wakes again
            log.exception("dispatch cycle failed")
            return 0
        if stopped:
            self.wake_dispatcher()  # more may be placeable: hand over to the next invocation
        return placed

    @_invocation
    def on_ecs_task_event(self, envelope: Mapping[str, Any]) -> None:
        self.controls.on_ecs_task_event(self.services, self.reactor, envelope)

    @_invocation
    def on_ec2_event(self, envelope: Mapping[str, Any]) -> None:
        self.controls.on_ec2_event(self.services, self.reactor, envelope)

    @_invocation
    def on_sweep(self, remaining_ms: Callable[[], int] | None = None) -> None:
        from chalicelib.control.sweep import SweepPolicy

        try:
            policy = SweepPolicy(remaining_ms=remaining_ms)  # its work stops short of the Lambda's timeout
            self.controls.sweep(self.services, self.reactor, self.services.clock.now_ms(), policy)
        finally:
            self.wake_dispatcher()  # repairs a wake lost anywhere in the last minute

    @_invocation
    def on_capacity(self) -> None:
        self.controls.reconcile(self.services, self.capacity)

    @_invocation
    def on_object_created(self, envelope: Mapping[str, Any]) -> list[str]:
        """S3 "Object Created" via EventBridge: detail.bucket.name and detail.object.key (not URL-encoded). The
        object's sequencer (new for every write of a key; the event id when absent) makes a redelivery submit
        nothing."""
        detail = envelope.get("detail") or {}
        bucket = str((detail.get("bucket") or {}).get("name") or "")
        obj = detail.get("object") or {}
        key = str(obj.get("key") or "")
        if not bucket or not key:
            log.warning("an S3 event without bucket or key: %s", envelope.get("id"))
            return []
        version = str(obj.get("sequencer") or envelope.get("id") or "")
        return self.controls.on_object_created(self.services, self.reactor, bucket, key, version)

    @_invocation
    def on_schedule(self, event: Mapping[str, Any]) -> str | None:
        """EventBridge Scheduler's target input: {"trigger": "<trigger name>"}."""
        name = event.get("trigger")
        if not isinstance(name, str) or not name:
            log.warning("a scheduler invocation without a trigger name: %s", sorted(event))
            return None
        return self.controls.on_schedule(self.services, self.reactor, name)
