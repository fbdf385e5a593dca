"""Apply events to jobs and carry out their effects ("decide, then do"): the one executor of every effect.

`Reactor.apply(job_id, event)`: read the job, `lifecycle.transition`, persist the new job with one conditional
write (a lost race re-reads and re-decides), then run the effects: the outcome's commands (Launch, StopTask) at once,
and what the committed change carries (`effects.effects_of(old, new)`) either here too (the local runtime) or, when
`Services.effects_from_stream` says the store's change stream is the outbox (AWS), from the stream record, through
this same `run_effects` (runtime/aws/runtime.py `on_stream`; docs/adr/0023-one-effects-pipeline.md). Effects that may
fan out (dependents, array children) go to `defer`, the runtime's work queue, so no request or task event waits on
them. A new effect type is one `case` in `run_effects` (mypy fails until it has one).

`Reactor.apply_all(job_id, events)` does the same for several events of one job with one write: the local engine
applies a task's start and stop together when both are pending, and a batch of finished children to their parent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Protocol, assert_never

from chalicelib.compute.nodes import attempt_spec
from chalicelib.compute.port import Launcher, NodeAware, TaskSpec
from chalicelib.control import usage
from chalicelib.control.context import Services
from chalicelib.domain import arrays, caps, consumables, ecs_task, job_spec, lifecycle, nodes
from chalicelib.domain.effects import commands, effects_of, in_order
from chalicelib.domain.errors import Conflict
from chalicelib.domain.job_detail import job_detail
from chalicelib.domain.jobs import (
    ACTIVE,
    FAILED,
    PENDING,
    RUNNABLE,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    Job,
    child_id,
    split_child_id,
)
from chalicelib.store.jobs import job_pk
from chalicelib.store.port import MAX_TRANSACT_OPS

log = logging.getLogger("batchplane.react")

Defer = Callable[[Callable[[], None]], None]
# Counts a finished array child into its parent (parent id, the event); by default at once, with its own write.
CountChild = Callable[[str, lifecycle.ChildFinished], None]
APPLY_RETRIES = 16
STATE_CHANGE = "Batch Job State Change"


def run_now(work: Callable[[], None]) -> None:
    work()


def run_deferred(item: Callable[[], None]) -> None:
    """One item of deferred work (an effect the caller does not wait for): a failure is logged, not raised, so that
    the items after it run (the sweep repairs what it missed). The local engine's work queue runs each item so."""
    try:
        item()
    except Exception:
        log.exception("deferred work failed")


def _run_all(work: list[Callable[[], None]]) -> None:
    """Deferred effects of several jobs, in order, as one item of the work queue: one failing does not stop the
    others, as for an item of its own."""
    for item in work:
        run_deferred(item)


class Delivery(Protocol):
    """Where the two effects that leave the control plane go: a state-change event, and a dispatcher wake-up."""

    def publish(self, job: Job) -> None: ...

    def wake(self, job: Job) -> None: ...


class InlineDelivery:
    """At once: to the Services' event sink (a failure is logged: it must not undo a committed transition), and
    `Services.wake`. The AWS stream handler batches both instead (runtime/aws/runtime.py `StreamBatch`)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def publish(self, job: Job) -> None:
        try:
            self.svc.events.publish(STATE_CHANGE, [job.arn], job_detail(job))
        except Exception:
            log.exception("publishing the state change of %s failed", job.job_id)

    def wake(self, job: Job) -> None:
        self.svc.wake()


def reactor_for(
    svc: Services, *, observe: Callable[[Job], None] | None = None, count_child: CountChild | None = None
) -> Reactor:
    """The one way a reactor is built: on the Services' launcher and work queue. The composition root
    (runtime/plane.py) builds one per plane; everything else asks for that one (`reactor_of`)."""
    return Reactor(svc, svc.launcher, svc.defer, observe=observe, count_child=count_child)


def reactor_of(svc: Services) -> Reactor:
    """The plane's reactor (`Services.plane_reactor`), for the API and the trigger handlers. Services a test built
    without a plane, or replaced (`dataclasses.replace`) from a plane's, get a reactor of their own."""
    if svc.plane_reactor is not None:
        reactor = svc.plane_reactor()
        if reactor.svc is svc:
            return reactor
    return reactor_for(svc)


class Reactor:
    def __init__(
        self,
        svc: Services,
        launcher: Launcher,
        defer: Defer = run_now,
        *,
        observe: Callable[[Job], None] | None = None,
        count_child: CountChild | None = None,
    ) -> None:
        self.svc = svc
        self.launcher = launcher
        # (read once: isinstance of a runtime-checkable Protocol walks its members, per state change otherwise)
        self._node_aware = isinstance(launcher, NodeAware)
        self.defer = defer
        self.observe = observe  # called with every job this reactor persists, before its effects run
        self.count_child: CountChild = count_child or self._count_now
        self.delivery: Delivery = InlineDelivery(svc)
        self._ce_types: dict[str, str | None] = {}

    # -- apply ------------------------------------------------------------------------------------------------

    def apply(self, job_id: str, event: lifecycle.Event) -> Job | None:
        """Returns the job after the event (unchanged when the event did not apply), None if it does not exist."""
        return self.apply_all(job_id, (event,))

    def apply_all(self, job_id: str, events: Sequence[lifecycle.Event], read: Job | None = None) -> Job | None:
        """Apply events in order with one conditional write. `lifecycle.transition` decides each step from the job
        the step before left; after the write, each step's effects run with the job as that step left it, so a job
        whose task started and stopped between two looks still passes through RUNNING (startedAt set, both state
        changes published). `read`: the job as the caller just read it (the write fails if it changed since, and
        the job is read again). Returns the job after the events, None if it does not exist."""
        for _ in range(APPLY_RETRIES):
            job, read = read or self.svc.jobs.get(job_id), None
            if job is None:
                return None
            after, steps = self._decide(job, events)
            if after is job:  # nothing to write: only commands (a repeated stop) can be asked for
                self._unchanged(job, steps)
                return job
            try:
                saved = self.svc.jobs.save(after)
            except Conflict:
                continue
            except (consumables.Unavailable, caps.AtLimit):
                return job  # a claim whose units or cap place another job took meanwhile: not made, re-planned
            self._written(job, after, saved, steps)
            return saved
        raise Conflict(job_pk(job_id), None)

    def apply_many(self, entries: Sequence[tuple[str, Sequence[lifecycle.Event], Job | None]]) -> list[Job | None]:
        """`apply_all` for several jobs, their writes in one transaction (per MAX_TRANSACT_OPS jobs): the local
        engine's pending task events, a run's claims (domain/runs.py). Each entry is (job id, its events, the job as
        the caller holds it). A job the caller does not hold, or that takes or returns units (consumable resources,
        caps), goes through `apply_all`, and so does every job of a transaction that failed (one of them changed
        since it was read: nothing of it was written). Returns the jobs after their events, in the entries' order.
        An exception of one job's effects is raised once every job's were run (the first one)."""
        out: list[Job | None] = [None] * len(entries)
        alone: list[int] = []
        deferred: list[Callable[[], None]] = []  # the batch's deferred effects: one item of the work queue
        failed: Exception | None = None
        for start in range(0, len(entries), MAX_TRANSACT_OPS):
            decided: list[tuple[int, Job, Job, list[tuple[lifecycle.Event, lifecycle.Outcome]]]] = []
            for i in range(start, min(len(entries), start + MAX_TRANSACT_OPS)):
                read = entries[i][2]
                if read is None or read.consumable_resources or read.caps:
                    alone.append(i)
                    continue
                after, steps = self._decide(read, entries[i][1])
                if after.consumable_resources or after.caps:  # (a claim under caps)
                    alone.append(i)
                    continue
                decided.append((i, read, after, steps))
            writes = [d for d in decided if d[2] is not d[1]]
            try:
                saved = self.svc.jobs.save_all([after for _, _, after, _ in writes]) if writes else []
            except Conflict:
                alone += [i for i, _, _, _ in decided]
                continue
            for (i, job, after, steps), job_saved in zip(writes, saved, strict=True):
                out[i] = job_saved
                try:  # (one job's effect that raised does not cost the others theirs: re-raised at the end)
                    self._written(job, after, job_saved, steps, deferred.append)
                except Exception as e:
                    failed = failed or e
            for i, job, after, steps in decided:
                if after is job:
                    out[i] = job
                    try:
                        self._unchanged(job, steps)
                    except Exception as e:
                        failed = failed or e
        if deferred:
            self.defer(partial(_run_all, deferred))
        for i in sorted(alone):
            job_id, events, read = entries[i]
            try:
                out[i] = self.apply_all(job_id, events, read=read)
            except Exception as e:
                failed = failed or e
        if failed is not None:
            raise failed
        return out

    def _decide(
        self, job: Job, events: Sequence[lifecycle.Event]
    ) -> tuple[Job, list[tuple[lifecycle.Event, lifecycle.Outcome]]]:
        now = self.svc.clock.now_ms()
        after, steps = job, []
        for event in events:
            outcome = lifecycle.transition(after, event, now)
            after = outcome.job or after
            steps.append((event, outcome))
        return after, steps

    def _unchanged(self, job: Job, steps: list[tuple[lifecycle.Event, lifecycle.Outcome]]) -> None:
        for _, outcome in steps:
            self.run_effects(job, commands(outcome.effects))

    def _written(
        self,
        job: Job,
        after: Job,
        saved: Job,
        steps: list[tuple[lifecycle.Event, lifecycle.Outcome]],
        defer: Defer | None = None,
    ) -> None:
        """After the write of `after` (read as `job`, stored as `saved`): observed, then each step's effects."""
        if self.observe is not None:
            self.observe(saved)
        for event, outcome in steps:
            if isinstance(event, lifecycle.TaskStopped) and outcome.job is not None:
                self.record_usage(saved, event.attempt)  # before the effects wake the dispatcher
        current = job
        for _, outcome in steps:
            before = current
            if outcome.job is not None:
                current = saved if outcome.job is after else outcome.job
            carried = self.carried(before, current) if outcome.job is not None else ()
            self.run_effects(current, in_order(carried, commands(outcome.effects)), defer=defer)

    def _count_now(self, parent_id: str, event: lifecycle.ChildFinished) -> None:
        self.apply(parent_id, event)

    def carried(self, before: Job | None, after: Job) -> tuple[lifecycle.Effect, ...]:
        """The effects a committed change carries, to run here: none when the store's change stream runs them."""
        return () if self.svc.effects_from_stream else effects_of(before, after)

    def committed(self, before: Job | None, job: Job) -> None:
        """A job written outside `apply` (inserted by SubmitJob, an array child): run what the change carries."""
        self.run_effects(job, self.carried(before, job))

    def run_effects(
        self,
        job: Job,
        effects: Iterable[lifecycle.Effect],
        delivery: Delivery | None = None,
        defer: Defer | None = None,
    ) -> None:
        """Carry out effects on `job` (as the change that asked for them left it): the one executor of every effect
        type, in-process and from the AWS stream. `delivery`: where Publish and WakeDispatcher go (default: at once)."""
        out = delivery or self.delivery
        later = defer or self.defer  # (`apply_many` gathers a batch's into one item of the work queue)
        for effect in effects:
            match effect:
                case lifecycle.Publish():
                    out.publish(job)
                    # a multi-node job's node jobs emit their own state changes (with the job's, or, a node that
                    # the launcher reports started on its own, when it runs: domain/nodes.py)
                    for view in nodes.published_with_job(job, nodes_report_start=self._node_aware):
                        out.publish(view)
                case lifecycle.PublishNode(index=i):
                    out.publish(nodes.node_view(job, i))
                case lifecycle.Launch(attempt=n):
                    self.launcher.launch(self.task_spec(job, n))
                case lifecycle.StopTask(attempt=n, reason=why):
                    self.launcher.stop(job.job_id, n, why)
                case lifecycle.LaunchNodes(attempt=n, main_address=address):
                    self.launch_nodes(job, n, address)
                case lifecycle.NotifyDependents(succeeded=ok):
                    later(partial(self.notify_dependents, job.job_id, ok))
                case lifecycle.NotifyParent(succeeded=ok):
                    assert job.array is not None and job.array.parent_id is not None and job.array.index is not None
                    self.count_child(job.array.parent_id, lifecycle.ChildFinished(job.array.index, ok))
                case lifecycle.CreateChildren():
                    later(partial(self.create_children, job.job_id))
                case lifecycle.CancelChildren(reason=why, terminate=term):
                    later(partial(self.cancel_children, job.job_id, why, term))
                case lifecycle.WakeDispatcher():
                    out.wake(job)
                case _:
                    assert_never(effect)

    def launch_nodes(self, job: Job, attempt: int, address: str) -> None:
        """A multi-node attempt's other nodes, once its main node runs at `address` (docs/adr/0027)."""
        if not isinstance(self.launcher, NodeAware):
            log.error("%s: the launcher cannot launch nodes on their own; attempt %d stopped", job.job_id, attempt)
            self.launcher.stop(job.job_id, attempt, "CannotStartContainerError: the nodes cannot be launched")
            return
        if job.current is not None and job.current.number == attempt:
            self.launcher.launch_nodes(self.task_spec(job, attempt), address)

    def record_usage(self, job: Job, attempt: int) -> None:
        """Fair share: a stopped attempt's vCPU-seconds join its share's history (control/usage.py)."""
        try:
            usage.record_attempt(self.svc, job, attempt)
        except Exception:  # usage is advisory: it must not undo a committed transition
            log.exception("recording the fair-share usage of %s failed", job.job_id)

    def task_spec(self, job: Job, attempt: int) -> TaskSpec:
        assert job.current is not None
        spec = TaskSpec(
            job_id=job.job_id,
            attempt=attempt,
            task_id=job.current.task_id,
            command=job_spec.render_command(list(job.container.get("command") or []), job.parameters),
            environment=job_spec.batch_environment(job, attempt, job.current.compute_environment),
            log_stream=job.current.log_stream,
            vcpus=job.vcpus,
            memory=job.memory,
            compute_environment=job.current.compute_environment,
            job_definition_name=job.job_definition_name,
            job_definition_arn=job.job_definition_arn,
            container=ecs_task.task_role(job.ecs_properties) if job.ecs_properties else dict(job.container),
            containers=self._containers(job, attempt),
            tags=dict(job.tags) if job.propagate_tags else {},
            region=job.arn.split(":")[3] or self.svc.settings.default_region,
            compute_environment_type=self.ce_type(job.current.compute_environment),
            run=job.current.run,
        )
        if job.is_multinode:
            return attempt_spec(job, spec)
        return spec

    def _containers(self, job: Job, attempt: int) -> tuple[ecs_task.TaskContainer, ...]:
        """A multi-container job's containers (docs/adr/0028); () for a single-container one."""
        if job.ecs_properties is None or job.current is None:
            return ()
        reserved = job_spec.batch_environment(job, attempt, job.current.compute_environment)
        return ecs_task.task_containers(job.ecs_properties, reserved, job.parameters, job.current.log_stream)

    def ce_type(self, name: str) -> str | None:
        """The resource type of a compute environment (None: unmanaged, or gone). Read from the list of compute
        environments, which the local repository keeps between writes (runtime/local.py) and the dispatcher reads
        anyway; a CE's Fargate-ness cannot change (UpdateComputeEnvironment cannot move it between EC2 and Fargate)."""
        if name not in self._ce_types:
            found = [ce for ce in self.svc.repo.list_ces(None, 1000) if ce.name == name]
            if not found:
                return None
            self._ce_types[name] = found[0].resource_type
        return self._ce_types[name]

    # -- dependencies -----------------------------------------------------------------------------------------

    def notify_dependents(self, job_id: str, succeeded: bool) -> None:
        event: lifecycle.Event = (
            lifecycle.DependencySucceeded(job_id) if succeeded else lifecycle.DependencyFailed(job_id)
        )
        for dependent in self.svc.jobs.dependents(job_id):
            self.apply(dependent, event)
        if not succeeded:
            # An array that failed before creating all its children: N_TO_N dependents of the children that will
            # never exist wait on them by edge; they fail now instead of waiting forever.
            for index in self._never_created(job_id):
                missing = child_id(job_id, index)
                for dependent in self.svc.jobs.dependents(missing):
                    self.apply(dependent, lifecycle.DependencyFailed(missing))

    def _never_created(self, parent_id: str) -> range:
        """Indices of the children a finished array will never create (empty unless it is a terminal array)."""
        parent = self.svc.jobs.get(parent_id)
        if parent is None or not parent.terminal or parent.array is None or parent.array.size is None:
            return range(0)
        return range(parent.array.children_created, parent.array.size)

    def settle_pending(self, job: Job) -> None:
        """Apply what already happened to the job's pending dependencies (closes the race with their completion:
        the job's edges were written first, so any completion after this read notifies it). A pending child id
        whose array finished without creating it will never exist: it counts as failed. So does a dependency that
        no longer exists at all (a job, or the array of a child id: they existed when the dependent was submitted,
        so they were removed after their retention, and whether they succeeded is not known any more)."""
        if not job.pending:
            return
        found = {dep.job_id: dep for dep in self.svc.jobs.get_many(list(job.pending))}
        for dep_id in job.pending:
            dep = found.get(dep_id)
            if dep is not None and dep.status == SUCCEEDED:
                self.apply(job.job_id, lifecycle.DependencySucceeded(dep_id))
            elif (dep is not None and dep.status == FAILED) or (dep is None and self._will_never_exist(dep_id)):
                self.apply(job.job_id, lifecycle.DependencyFailed(dep_id))
            elif dep is None and self._gone(dep_id):
                self.apply(job.job_id, lifecycle.DependencyFailed(dep_id, gone=True))

    def _gone(self, job_id: str) -> bool:
        parsed = split_child_id(job_id)
        return parsed is None or self.svc.jobs.get(parsed[0]) is None

    def _will_never_exist(self, job_id: str) -> bool:
        parsed = split_child_id(job_id)
        return parsed is not None and parsed[1] in self._never_created(parsed[0])  # range: O(1) membership

    # -- array jobs -------------------------------------------------------------------------------------------

    def create_children(self, parent_id: str) -> None:
        """Write the parent's children in transactions, resumably (`children_created` is the cursor), up to a
        window ahead of the finished ones (domain/arrays.py; the rest are written as those finish)."""
        while True:
            parent = self.svc.jobs.get(parent_id)
            if parent is None or parent.array is None or parent.array.size is None:
                return
            if parent.status != PENDING or parent.is_cancelled or parent.is_terminated:
                return
            start, until = parent.array.children_created, arrays.write_until(parent.array)
            if start >= until:
                return
            per_child = 1 + len(arrays.child_dependencies(parent, 1))
            end = min(until, start + max(1, MAX_TRANSACT_OPS // per_child))
            now = self.svc.clock.now_ms()
            children, edges = [], []
            for i in range(start, end):
                deps = arrays.child_dependencies(parent, i)
                children.append(arrays.child(parent, i, deps, now))
                edges += [(d, child_id(parent_id, i)) for d in deps]
            try:
                self.svc.jobs.create_many(children, edges)
            except Conflict:
                self._create_missing(children, edges)
            after = self.apply(parent_id, lifecycle.ChildrenCreated(end))
            if after is None or after.status != PENDING or after.is_cancelled or after.is_terminated:
                # Cancelled or finished while this chunk was being written: these children must not run. A PENDING
                # child's cancel waits for its dependency, which may have finished before the child's edge was
                # written (no notification will come): settled here, it does not wait for the stale-PENDING sweep.
                why = (after.status_reason if after else None) or "Array parent job was cancelled"
                event: lifecycle.Event = (
                    lifecycle.Terminate(why) if after is not None and after.is_terminated else lifecycle.Cancel(why)
                )
                for child in children:
                    stopped = self.apply(child.job_id, event)
                    if stopped is not None and stopped.status == PENDING:
                        self.settle_pending(stopped)
                return
            for child in children:
                # Its first state published, as the AWS stream does for the insert; the chunk wakes the dispatcher
                # once, below (a wake per child ran a dispatch cycle per few children of a fast array).
                carried = self.carried(None, child)
                self.run_effects(child, [e for e in carried if not isinstance(e, lifecycle.WakeDispatcher)])
                if child.pending:
                    self.settle_pending(child)
            self.svc.wake()
            if after is None or after.array is None or after.array.children_created < end:
                return

    def _create_missing(self, children: list[Job], edges: list[tuple[str, str]]) -> None:
        """A previous run wrote part of this chunk before it died: write only what is missing."""
        existing = {j.job_id for j in self.svc.jobs.get_many([c.job_id for c in children])}
        for child in children:
            if child.job_id in existing:
                continue
            mine = [dep for dep, dependent in edges if dependent == child.job_id]
            with contextlib.suppress(Conflict):  # written concurrently: same content by construction
                self.svc.jobs.create_with_edges(child, mine)

    def cancel_children(self, parent_id: str, reason: str, terminate: bool) -> None:
        event: lifecycle.Event = lifecycle.Terminate(reason) if terminate else lifecycle.Cancel(reason)
        statuses = (SUBMITTED, PENDING, RUNNABLE, *ACTIVE) if terminate else (SUBMITTED, PENDING, RUNNABLE)
        # The RUNNING ones last: a run's next child starts when the one before it ends (domain/runs.py), so the
        # children waiting in a run (STARTING) are stopped before the stop of the one it runs can end it.
        found = list(self.svc.jobs.iter_children(parent_id, *statuses))
        for child in sorted(found, key=lambda c: c.status == RUNNING):
            self.apply(child.job_id, event)
        self.apply(parent_id, lifecycle.CheckChildren())

    def parent_counts(self, parent: Job) -> dict[str, int]:
        """Children by status for statusSummary: those written and unfinished from the store (at most a window
        of them), the finished ones from the parent's counts, the ones not written yet as `arrays.virtual_status`
        says (children finished but not yet counted by the parent count as PENDING). The parent is read before
        its children, so more children than its `children_created` may exist by then, and the partitions are read
        one after the other, so a retried child may be read twice: the counts always add up to the size."""
        assert parent.array is not None and parent.array.size is not None
        counts = self.svc.jobs.children_counts(parent.job_id, (SUBMITTED, PENDING, RUNNABLE, *ACTIVE))
        arrays.drop_excess(counts, parent.array.size - parent.array.succeeded - parent.array.failed)
        counts[SUCCEEDED] = parent.array.succeeded
        counts[FAILED] = parent.array.failed
        status, virtual = arrays.virtual_counts(parent)
        virtual = min(virtual, max(0, parent.array.size - sum(counts.values())))
        counts[status] += virtual
        counts[PENDING] += max(0, parent.array.size - sum(counts.values()))
        return counts
