"""The local job engine: the dispatcher thread, the work queue, and recovery at start.

Progress is event-driven: every write that can make work schedulable calls `wake()`, and the dispatcher runs a
cycle at once. The dispatcher's periodic wake-up (SWEEP_SECONDS) is a repair sweep, never the normal path.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable

from chalicelib.control.context import Services
from chalicelib.control.dispatch import Dispatcher
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import ACTIVE, FAILED, PENDING, SUCCEEDED, Job

log = logging.getLogger("batchplane.engine")

SWEEP_SECONDS = 30.0
HOST_ID = "local"
HOST_TERMINATED = f"Host EC2 (instance {HOST_ID}) terminated."


class WorkQueue:
    """Deferred work, run in order by one worker thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="work", daemon=True)
        self._idle = threading.Condition()
        self._busy = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(work)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                work()
            except Exception:  # one failed item must not stop the queue; the sweep repairs it
                log.exception("deferred work failed")
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()


class Engine:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.reactor = Reactor(svc, svc.launcher, svc.defer)
        self.dispatcher = Dispatcher(svc, self.reactor, lambda: uuid.uuid4().hex)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.recover()
        self._thread.start()
        self.wake()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(SWEEP_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                while self.dispatcher.cycle() and not self._stopping.is_set():
                    pass
            except Exception:  # keep dispatching; the failure is logged
                log.exception("dispatch cycle failed")

    # -- recovery ---------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Repair what a crash may have interrupted. Runs once, before the dispatcher starts.

        - STARTING without a process (crashed between claim and launch): launch it now (same attempt key).
        - STARTING/RUNNING with a process from the previous run: the process is stopped (we cannot observe its
          exit any more) and the attempt fails as a lost host would (HOST_TERMINATED); the retry strategy decides,
          and `onStatusReason: "Host EC2*"` rules apply as on AWS.
        - PENDING jobs: dependencies that finished while notifications were lost are applied; array parents get
          their missing children and their finished children counted (both idempotent).
        """
        for q in self.svc.repo.list_jqs():
            for children in (False, True):
                # Read every active job before acting: a STARTING job relaunched here turns RUNNING at once, and
                # must not then be found again as RUNNING and have its new process killed as a stale one.
                active = [
                    job
                    for status in ACTIVE
                    for job in list(self.svc.jobs.iter_queue(q.name, status, children=children))
                ]
                for job in active:
                    self._recover_active(job)
                for job in list(self.svc.jobs.iter_queue(q.name, PENDING, children=children)):
                    self._recover_pending(job)

    def _recover_active(self, job: Job) -> None:
        if job.current is None:
            return
        n = job.current.number
        if not self.svc.launcher.recover(job.job_id, n):
            self.reactor.run_effects(job, (lifecycle.Launch(n),))  # claimed, never launched: launch it now
            return
        self.reactor.apply(job.job_id, lifecycle.TaskStopped(n, None, status_reason=HOST_TERMINATED))

    def _recover_pending(self, job: Job) -> None:
        if job.pending:
            self.reactor.settle_pending(job)
            return
        if job.is_array_parent and job.array is not None:
            for status in (SUCCEEDED, FAILED):
                for child in list(self.svc.jobs.iter_children(job.job_id, status)):
                    assert child.array is not None and child.array.index is not None
                    self.reactor.apply(job.job_id, lifecycle.ChildFinished(child.array.index, status == SUCCEEDED))
            self.reactor.create_children(job.job_id)
        else:
            self.reactor.apply(job.job_id, lifecycle.Evaluate())
