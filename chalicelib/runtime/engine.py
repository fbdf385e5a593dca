"""The local job engine: the dispatcher thread, the work queue, and recovery at start.

Progress is event-driven: every write that can make work schedulable calls `wake()`, and the dispatcher runs a
cycle at once. Every SWEEP_SECONDS the dispatcher thread also runs the repair sweep (control/sweep.py), never the
normal path. Recovery at start is the same sweep with `restart=True`.

The dispatcher thread also applies the launcher's task events (`report`): a task's watcher queues them, and the
thread applies the pending events of one job with one write (a short task's start and stop together). It is the
only thread that claims or stops jobs, so it can keep the capacity in use in memory (`ActiveJobs`, rebuilt from
the store at start and on every sweep). Finished array children are counted into their parent in batches
(`ChildCounts`), one parent write per batch instead of one per child.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

from chalicelib.control.context import Services
from chalicelib.control.dispatch import ActiveJobs, Dispatcher
from chalicelib.control.react import InlineDelivery, Reactor, run_deferred
from chalicelib.control.retention import purge
from chalicelib.control.sweep import SweepPolicy, SweepReport, sweep
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import ChildFinished, Event, TaskStarted, TaskStopped, TimedOut
from chalicelib.domain.reasons import host_terminated_reason

log = logging.getLogger("batchplane.engine")

SWEEP_SECONDS = 30.0
# Finished jobs removed per periodic sweep at most (control/retention.py): ~20 ms of this thread per 100 jobs, and
# 200 every SWEEP_SECONDS is 576,000 a day.
PURGE_BUDGET = 200
HOST_ID = "local"
HOST_TERMINATED = host_terminated_reason(HOST_ID)
# The local launcher reports a process start at once, so a claim a sweep period old without a task was lost; a
# process it finds unobserved (this server did not start it, or lost its report) is stopped: a lost host.
PERIODIC = SweepPolicy(starting_grace_ms=int(SWEEP_SECONDS * 1000), lost_host=HOST_ID)
AT_START = SweepPolicy(restart=True, lost_host=HOST_ID)
# How long finished array children wait to be counted into their parent, so that one write counts many. A crash
# loses nothing: the sweep at start recounts every PENDING parent's finished children.
COUNT_CHILDREN_SECONDS = 0.05
Recorded = Callable[[], None] | None  # what to run once a task event is applied (Engine.report)
# Task events whose write failed (e.g. SQLite busy) are applied again after 1 s, 2 s, 4 s, ... (about 8 minutes in
# all), never dropped at the first failure: with the Docker executor no sweep repairs a lost end (lost_host=None).
APPLY_RETRIES = 9
APPLY_RETRY_SECONDS = 1.0
# A dispatch cycle that raised (a launch that failed after its claim, a store error) is run again after this long,
# doubled at each failure in a row up to the last: the RUNNABLE jobs the failed cycle did not reach would otherwise
# wait for the next write or the periodic sweep.
DISPATCH_RETRY_SECONDS = (0.05, 5.0)


class WorkQueue:
    """Deferred work, run in order by one worker thread."""

    def __init__(self) -> None:
        # SimpleQueue: its put is one C call, where Queue.put takes a lock and notifies a condition (one put per
        # finished job; Queue's was a tenth of the dispatcher thread's Python time for short array children).
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="work", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            run_deferred(work)  # (one failed item must not stop the queue; the sweep repairs it)


class ChildCounts:
    """Finished array children not yet counted into their parent (the reactor's `count_child`)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._waiting: dict[str, list[ChildFinished]] = {}  # parent id -> its children's events, in order
        self._since: float | None = None  # monotonic time the oldest waiting event came

    def add(self, parent_id: str, event: ChildFinished) -> None:
        with self._lock:
            self._waiting.setdefault(parent_id, []).append(event)
            first, self._since = self._since is None, self._since or time.monotonic()
        if first:
            self._wake()  # the engine's loop waits until they are due

    def due_in(self) -> float | None:
        """Seconds until the waiting events are due (0: now); None when none waits."""
        with self._lock:
            since = self._since
        return None if since is None else max(0.0, since + COUNT_CHILDREN_SECONDS - time.monotonic())

    def take(self) -> dict[str, list[ChildFinished]]:
        with self._lock:
            waiting, self._waiting, self._since = self._waiting, {}, None
        return waiting


class RunDelivery(InlineDelivery):
    """The local engine's delivery with runs (domain/runs.py): the end of a run's child whose run still holds its
    slot frees no capacity, so it wakes no dispatch cycle (the run's last end does). A child that goes back to
    RUNNABLE for a retry then waits for that end too, as it would for the slot."""

    def __init__(self, svc: Services, active: ActiveJobs) -> None:
        super().__init__(svc)
        self.active = active

    def wake(self, job: Job) -> None:
        last = job.attempts[-1] if job.current is None and job.attempts else None
        if last is not None and last.run is not None and self.active.holds_run(last.run):
            return
        super().wake(job)


class Engine:
    """The local runtime's driver of the plane the composition root built (runtime/plane.py `local_engine`): its
    reactor, whose `count_child` is this engine's, and its dispatcher, the only one, which keeps the capacity in use
    in memory (`Dispatcher.active`).

    `retention_ms`: finished jobs older than this leave the store after each periodic sweep (control/retention.py;
    0 keeps every job), and `forget` is told of each, for what the launcher keeps per attempt."""

    def __init__(
        self,
        svc: Services,
        reactor: Reactor,
        dispatcher: Dispatcher,
        *,
        retention_ms: int = 0,
        forget: Callable[[Job], None] = lambda job: None,
        lost_host: str | None = HOST_ID,
    ) -> None:
        assert dispatcher.active is not None, "the local engine's dispatcher keeps the capacity in use (ActiveJobs)"
        self.svc = svc
        # The process launcher stops a process it finds unobserved: its attempt fails as this host lost. The Docker
        # launcher re-attaches and reports every end itself (None): compute/docker.py, docs/adr/0016.
        self._periodic = dataclasses.replace(PERIODIC, lost_host=lost_host)
        self._at_start = dataclasses.replace(AT_START, lost_host=lost_host)
        self.retention_ms = retention_ms
        self.forget = forget
        self._wake = threading.Event()  # the loop has something to look at
        self._dispatch = False  # ... and that includes a write that may make work schedulable (`wake`)
        self.active: ActiveJobs = dispatcher.active
        self.children = ChildCounts(self._wake.set)
        self.reactor = reactor
        self.dispatcher = dispatcher
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._events_lock = threading.Lock()
        # Queued task events, each with what to run once it is applied; None: applied by the caller.
        self._events: list[tuple[str, Event, Recorded]] | None = None
        # Events whose write failed, applied again once due (dispatcher thread only; `_apply`).
        self._retry: list[tuple[str, Event, Recorded]] = []
        self._retry_tries: dict[str, int] = {}
        self._retry_due: float | None = None
        self._dispatch_due: float | None = None  # a failed dispatch cycle's retry (DISPATCH_RETRY_SECONDS)
        self._dispatch_pause = DISPATCH_RETRY_SECONDS[0]

    def wake(self) -> None:
        """Services.wake: a write may have made work schedulable, so the loop runs the dispatch cycles."""
        self._dispatch = True
        self._wake.set()

    def report(self, job_id: str, event: TaskStarted | TaskStopped, recorded: Recorded = None) -> None:
        """A task event from the launcher. From a task's watcher it is queued for the dispatcher thread. On the
        dispatcher thread itself (a launch that failed, a recovery in the sweep), before start and after stop, it is
        applied at once: the sweep relies on an attempt's own end being applied before what it decides next.

        `recorded` runs once the event is applied (written, or found stale), on the applying thread: the Docker
        launcher removes a container only then (compute/docker.py). Not run when applying failed."""
        with self._events_lock:
            if self._events is not None and threading.current_thread() is not self._thread:
                self._events.append((job_id, event, recorded))
                self._wake.set()
                return
        self.reactor.apply(job_id, event)
        if recorded is not None:
            recorded()

    def count_child(self, parent_id: str, event: ChildFinished) -> None:
        """The reactor's `count_child`: a finished array child, counted into its parent with the next batch while
        the thread runs."""
        with self._events_lock:
            if self._events is not None:
                self.children.add(parent_id, event)
                return
        self.reactor.apply(parent_id, event)

    def start(self) -> None:
        self.recover()
        with self._events_lock:
            self._events = []
        self._thread.start()
        self.wake()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)
        with self._events_lock:
            events, self._events = self._events or [], None
        retried, self._retry = self._retry, []
        self._apply(retried + events)  # what came after the thread's last look; later ones: applied by their caller
        if self._retry:  # compute/docker.py's recovery at the next start reports a container's end again
            log.error("task events not applied at stop: %s", [(j, e) for j, e, _ in self._retry])
        self._count_children()

    def _loop(self) -> None:
        try:  # read here, once task events are queued for this thread: from now on only it claims or stops jobs
            self.active.rebuild(self.svc)
        except Exception:  # the dispatcher reads the capacity in use from the store until a sweep rebuilds it
            log.exception("reading the capacity in use failed")
        last_sweep = time.monotonic()
        while not self._stopping.is_set():
            with self._events_lock:
                queued = bool(self._events)
            if not queued and not self._dispatch:
                self._wake.wait(self._idle_seconds())
            self._wake.clear()  # before looking: a wake-up from after this point makes the loop look again
            if self._stopping.is_set():
                return
            if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                # In this thread: no claim is between its write and its launch while the sweep looks.
                last_sweep = time.monotonic()
                try:
                    sweep(self.svc, self.reactor, self.svc.clock.now_ms(), self._periodic)
                except Exception:
                    log.exception("repair sweep failed")
                try:  # jobStateTimeLimitActions of queues no event has woken (the cycle below checks them too)
                    self.dispatcher.check_time_limits()
                except Exception:
                    log.exception("time-limit check failed")
                try:
                    self.active.rebuild(self.svc)
                except Exception:
                    log.exception("reading the capacity in use failed")
                if self.dispatcher.runnable is not None:  # bounds what a missed write could leave unseen
                    self.dispatcher.runnable.forget()
                if self.retention_ms:
                    try:  # finished jobs only: nothing this thread claims or stops
                        purge(
                            self.svc,
                            self.svc.clock.now_ms(),
                            self.retention_ms,
                            forget=self.forget,
                            budget=PURGE_BUDGET,
                            stop=self._stopping.is_set,  # a stop does not wait for the rest of the batch
                        )
                    except Exception:
                        log.exception("removing finished jobs past their retention failed")
                self._dispatch = True
            with self._events_lock:
                events, self._events = self._events or [], []
            if self._retry_due is not None and time.monotonic() >= self._retry_due:
                events, self._retry, self._retry_due = self._retry + events, [], None
            elif self._retry:  # a job's later events wait behind its failed ones: applied in the order they came
                held = [e for e in events if e[0] in self._retry_tries]
                self._retry.extend(held)
                events = [e for e in events if e[0] not in self._retry_tries]
            self._apply(events)
            self._expire_attempts()
            if self.children.due_in() == 0:
                self._count_children()
            retry = self._dispatch_due is not None and time.monotonic() >= self._dispatch_due
            if self._dispatch or retry or self.dispatcher.reasons_due_in(self.svc.clock.now_ms()) == 0:
                # Reset before the cycles: they read every write that woke the loop before this point.
                self._dispatch, self._dispatch_due = False, None
                try:
                    self.dispatcher.cycles(stop=self._stopping.is_set)
                except Exception:  # keep dispatching: again after a pause, the failure logged
                    log.exception("dispatch cycle failed; again in %.2fs", self._dispatch_pause)
                    self._dispatch_due = time.monotonic() + self._dispatch_pause
                    self._dispatch_pause = min(2 * self._dispatch_pause, DISPATCH_RETRY_SECONDS[1])
                else:
                    self._dispatch_pause = DISPATCH_RETRY_SECONDS[0]

    def _idle_seconds(self) -> float:
        """How long the loop may wait for a wake-up: until the next sweep, batch of children or deferred reason."""
        due = [SWEEP_SECONDS]
        for at in (self._retry_due, self._dispatch_due):
            if at is not None:
                due.append(max(0.0, at - time.monotonic()))
        if (children := self.children.due_in()) is not None:
            due.append(children)
        if (reasons := self.dispatcher.reasons_due_in(self.svc.clock.now_ms())) is not None:
            due.append(reasons / 1000)
        if (deadline := self.active.deadlines.next_due()) is not None:
            due.append(max(0.0, (deadline - self.svc.clock.now_ms()) / 1000))
        return min(due)

    def _expire_attempts(self) -> None:
        """Attempts whose deadline passed are timed out (control/timeouts.py): marked, and their launcher asked to
        stop them. Checked against the job as held, so an attempt that ended meanwhile is left alone; applied on this
        thread, which is the only one that claims or stops jobs."""
        now = self.svc.clock.now_ms()
        for job_id, attempt in self.active.deadlines.due(now):
            job = self.active.get(job_id)
            if job is None or job.current is None or job.current.number != attempt or not job.timed_out(now):
                continue  # ended, retried or changed since (a later deadline is held for it)
            if job.timeout_marked:
                continue  # asked already; the periodic sweep asks again until the stop is reported
            try:
                self.reactor.apply_all(job_id, [TimedOut(attempt)], read=job)
            except Exception:  # the periodic sweep finds it again
                log.exception("timing out %s#%d failed", job_id, attempt)

    def _apply(self, events: list[tuple[str, Event, Recorded]]) -> None:
        """Queued task events: one write per job for all of its events, in the order they came. A job's events
        whose write fails are kept, with their `recorded` callbacks, and applied again later (APPLY_RETRIES)."""
        by_job: dict[str, list[tuple[str, Event, Recorded]]] = {}
        for entry in events:
            by_job.setdefault(entry[0], []).append(entry)
        if len(by_job) > 1:
            # Several jobs' events (a run's children end one after another while this thread claims): one
            # transaction for all of them, each against the job as this thread last wrote it.
            batch = [
                (job_id, [e for _, e, _ in entries], self.active.get(job_id)) for job_id, entries in by_job.items()
            ]
            try:
                self.reactor.apply_many(batch)
            except Exception:  # (a job whose events were applied is not applied twice: its events no longer apply)
                log.exception("applying the task events of %d jobs together failed; one by one", len(batch))
            else:
                for job_id, entries in by_job.items():
                    self._recorded(job_id, entries)
                return
        for job_id, entries in by_job.items():
            mine = [event for _, event, _ in entries]
            try:  # against the job as this thread last wrote it (a write since then is noticed, and it is read)
                self.reactor.apply_all(job_id, mine, read=self.active.get(job_id))
            except Exception:
                self._failed(job_id, entries)
                continue
            self._recorded(job_id, entries)

    def _recorded(self, job_id: str, entries: list[tuple[str, Event, Recorded]]) -> None:
        self._retry_tries.pop(job_id, None)
        for recorded in (r for _, _, r in entries if r is not None):
            try:
                recorded()
            except Exception:
                log.exception("after recording the task events of %s", job_id)

    def _failed(self, job_id: str, entries: list[tuple[str, Event, Recorded]]) -> None:
        tries = self._retry_tries.get(job_id, 0) + 1
        if tries > APPLY_RETRIES:
            self._retry_tries.pop(job_id, None)
            log.exception("applying the task events of %s failed %d times; dropped: %s", job_id, tries, entries)
            return
        log.exception("applying the task events of %s failed (try %d); applied again later", job_id, tries)
        self._retry_tries[job_id] = tries
        self._retry.extend(entries)
        due = time.monotonic() + APPLY_RETRY_SECONDS * 2 ** (tries - 1)
        self._retry_due = due if self._retry_due is None else min(self._retry_due, due)

    def _count_children(self) -> None:
        for parent_id, events in self.children.take().items():
            try:
                self.reactor.apply_all(parent_id, events)
            except Exception:  # the sweep recounts a PENDING parent's finished children
                log.exception("counting the finished children of %s failed", parent_id)

    # -- recovery ---------------------------------------------------------------------------------------------

    def recover(self) -> SweepReport:
        """Repair what a crash may have interrupted. Runs once, before the dispatcher starts (control/sweep.py):

        - STARTING without a process (crashed between claim and launch): launch it now (same attempt key).
        - STARTING/RUNNING with a process from the previous run: the process is stopped (its exit cannot be
          observed any more) and the attempt fails as a lost host would (HOST_TERMINATED); the retry strategy
          decides, and `onStatusReason: "Host EC2*"` rules apply as on AWS.
        - PENDING jobs: dependencies that finished while notifications were lost are applied; array parents get
          their missing children and their finished children counted (both idempotent).
        """
        return sweep(self.svc, self.reactor, self.svc.clock.now_ms(), self._at_start)
