"""The repair sweep: what events missed, found by reading the store. Never the normal path (ADR 0003).

One implementation for both runtimes: the local engine runs it at start (`SweepPolicy(restart=True, ...)`) and
every SWEEP_SECONDS; on AWS a scheduled Lambda runs `sweep(svc, reactor, now_ms)`. Steps, per job queue:

0. STARTING and RUNNING jobs still in the per-status index partitions of an earlier version are moved to the
   shared ACTIVE one (`JobRepository.move_legacy_active`; one query per old partition when there are none).
1. STARTING attempts claimed more than `starting_grace_ms` ago (at a restart: every active attempt; otherwise at
   most `max_checks` per sweep). The launcher is asked whether the attempt ever started (`recover`):
   - no task: launched now, under the same key `jobId#attempt` (a crash between claim and launch; a launch that
     raised). If the launch fails again and the claim is older than `launch_deadline_ms`, the attempt fails with
     "Task failed to start" and its retry strategy decides.
   - a task: on ECS the launcher re-reported its state (a lost RUNNING/STOPPED event is applied now; a task still
     PROVISIONING leaves the job STARTING). With `lost_host` (the local launcher, which stops a process it finds
     unobserved) the attempt fails as `Host EC2 (instance <lost_host>) terminated.`; retry rules such as
     `onStatusReason: "Host EC2*"` apply as on AWS.
2. RUNNING attempts past `attemptDurationSeconds` (from the attempt's startedAt): `TimedOut`, which marks the attempt
   and asks the launcher to stop it; asked again on every sweep until the stop is reported. On AWS this is the only
   timeout check; the local engine also wakes at each deadline (control/timeouts.py, docs/adr/0025).
   RUNNING jobs not written for `running_check_ms`, when the launcher can read tasks in bulk (`TaskChecker`: ECS,
   DescribeTasks, 100 a call): a task that has stopped is reported as its lost STOPPED event would have been, one
   ECS no longer knows ends its attempt with TASK_END_UNKNOWN. At most `max_running_checks` per sweep, taken in
   turns from one sweep to the next. (The local launchers watch
   their processes themselves.)
3. PENDING jobs not updated for `pending_stale_ms` (at a restart: all): dependencies that finished while their
   notification was lost are applied; array parents get their missing children and recount finished ones (both
   idempotent); a job with nothing pending is evaluated.

4. Job queues and compute environments being deleted (status DELETING): one pass of control/deletion.py each,
   terminating their jobs; a resource is removed once none is left.

Everything goes through `Reactor.apply`, so a sweep racing with events or another sweep decides nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.compute.port import TaskChecker
from chalicelib.control import deletion, lazy_children
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import ACTIVE, PENDING, RUNNING, STARTING, SUCCEEDED, Job
from chalicelib.domain.reasons import TASK_FAILED_TO_START, host_terminated_reason

log = logging.getLogger("batchplane.sweep")

MAX_REASON = 1024


@dataclass(frozen=True)
class SweepPolicy:
    starting_grace_ms: int = 120_000  # a claim this old without a task is launched again
    launch_deadline_ms: int = 900_000  # ... and fails to start when launching it still fails after this
    pending_stale_ms: int = 300_000  # PENDING jobs untouched this long are re-settled
    restart: bool = False  # the control plane (re)starts: every active attempt is recovered, whatever its age
    # Launcher checks (ECS: ListTasks x2 + DescribeTasks) per periodic sweep, so a backlog of tasks waiting for
    # capacity (STARTING for long, legitimately) cannot throttle ECS; the rest wait for the next sweep.
    max_checks: int = 200
    running_check_ms: int = 300_000  # a RUNNING job not written for this long has its task read (TaskChecker)
    max_running_checks: int = 1_000  # ... at most this many per sweep (DescribeTasks: 10 calls)
    lost_host: str | None = None  # attempts the launcher finds (and stops) fail as this host lost; None: observed
    # The time the sweep has left (the Lambda's get_remaining_time_in_millis); None: unbounded. Deleting queues and
    # compute environments stops short of it (control/deletion.py).
    remaining_ms: Callable[[], int] | None = None


@dataclass
class SweepReport:
    relaunched: list[str] = field(default_factory=list)  # launch keys jobId#attempt
    lost: list[str] = field(default_factory=list)
    failed_to_start: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # PENDING job ids re-settled or re-evaluated
    recounted: list[str] = field(default_factory=list)  # array parent ids
    errors: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # queues and compute environments whose deletion completed
    reindexed: int = 0  # active jobs moved out of the index partitions an earlier version wrote (store/jobs.py)
    checked: int = 0  # attempts the launcher was asked about
    running_checked: int = 0  # RUNNING attempts whose task was read (TaskChecker)
    running_stopped: int = 0  # ... and found stopped: their lost end applied now
    deferred: int = 0  # stale claims left for the next sweep (max_checks reached)

    @property
    def repaired(self) -> int:
        ended = len(self.lost) + len(self.failed_to_start) + len(self.timed_out) + self.running_stopped
        return len(self.relaunched) + ended


def sweep(svc: Services, reactor: Reactor, now_ms: int, policy: SweepPolicy | None = None) -> SweepReport:
    policy = policy or SweepPolicy()
    report = SweepReport()
    unheard: list[tuple[str, int, str]] = []  # RUNNING attempts not heard from for running_check_ms (+ task id)
    for queue in svc.repo.list_jqs():
        try:
            report.reindexed += svc.jobs.move_legacy_active(queue.name)
        except Exception as e:  # the next sweep tries again; until then those jobs are not seen as active
            log.exception("re-indexing the active jobs of %s failed", queue.name)
            report.errors.append(f"{queue.name}: {type(e).__name__}: {e}")
        # Read every active job before acting: at a restart, a STARTING job launched here turns RUNNING at once
        # and must not then be found again as RUNNING and have its new task treated as a stale one.
        for job in list(svc.jobs.iter_statuses(queue.name, ACTIVE)):
            try:
                _repair_active(reactor, job, now_ms, policy, report)
            except Exception as e:  # one job's failure must not stop the sweep; the next sweep tries again
                _failed(report, job, e)
            if job.status == RUNNING and job.current is not None and now_ms - job.updated_at >= policy.running_check_ms:
                unheard.append((job.job_id, job.current.number, job.current.task_id))
        for job in list(svc.jobs.iter_statuses(queue.name, (PENDING,))):
            if not policy.restart and now_ms - job.updated_at < policy.pending_stale_ms:
                continue
            try:
                _repair_pending(svc, reactor, job, report)
            except Exception as e:
                _failed(report, job, e)
    if unheard and not policy.restart and isinstance(reactor.launcher, TaskChecker):
        _check_running(reactor.launcher, unheard, now_ms, policy, report)
    report.deleted, errors = deletion.drain_all(svc, reactor, policy.remaining_ms)
    report.errors += errors
    if report.repaired or report.settled or report.recounted:
        svc.wake()
    return report


def _check_running(
    checker: TaskChecker, attempts: list[tuple[str, int, str]], now_ms: int, policy: SweepPolicy, report: SweepReport
) -> None:
    """Read the tasks of RUNNING attempts not heard from lately; at most max_running_checks, a different slice at
    each sweep (by the minute), so that every one is read in turn whatever their number."""
    budget = max(1, policy.max_running_checks)
    if len(attempts) > budget:
        start = (now_ms // 60_000 * budget) % len(attempts)
        attempts = (attempts[start:] + attempts[:start])[:budget]
    try:
        report.running_stopped += checker.check_running(attempts)
        report.running_checked += len(attempts)
    except Exception as e:  # ECS unreachable, throttled: the next sweep reads them again
        log.exception("reading the tasks of %d running attempts failed", len(attempts))
        report.errors.append(f"running tasks: {type(e).__name__}: {e}")


def _failed(report: SweepReport, job: Job, e: Exception) -> None:
    log.exception("repairing %s failed", job.job_id)
    report.errors.append(f"{job.job_id}: {type(e).__name__}: {e}")


def _repair_active(reactor: Reactor, job: Job, now_ms: int, policy: SweepPolicy, report: SweepReport) -> None:
    current = job.current
    if current is None:
        return
    n, key = current.number, f"{job.job_id}#{current.number}"
    if not policy.restart:
        if job.status == RUNNING:
            if job.timed_out(now_ms):
                if not job.timeout_marked:
                    report.timed_out.append(key)
                reactor.apply(job.job_id, lifecycle.TimedOut(n))
            return
        if job.status != STARTING or now_ms - current.created_at < policy.starting_grace_ms:
            return
        if report.checked >= policy.max_checks:
            report.deferred += 1
            return
    report.checked += 1
    if reactor.launcher.recover(job.job_id, n):
        if policy.lost_host is not None:
            reason = host_terminated_reason(policy.lost_host)
            after = reactor.apply(job.job_id, lifecycle.TaskStopped(n, None, status_reason=reason))
            # (the launcher may have reported the attempt's own end first: then this changed nothing)
            if after is not None and any(a.number == n and a.status_reason == reason for a in after.attempts):
                report.lost.append(key)
        return
    try:
        reactor.run_effects(job, (lifecycle.Launch(n),))  # claimed, never launched: launch it now (same key)
    except Exception as e:
        if now_ms - current.created_at < policy.launch_deadline_ms:
            raise
        reason = f"CannotStartTask: {type(e).__name__}: {e}"[:MAX_REASON]
        reactor.apply(job.job_id, lifecycle.TaskStopped(n, None, reason=reason, status_reason=TASK_FAILED_TO_START))
        report.failed_to_start.append(key)
        return
    report.relaunched.append(key)


def _repair_pending(svc: Services, reactor: Reactor, job: Job, report: SweepReport) -> None:
    if job.pending:
        reactor.settle_pending(job)
        report.settled.append(job.job_id)
        return
    if job.is_array_parent and job.array is not None:
        for child in list(lazy_children.uncounted_finished(svc, job)):
            assert child.array is not None and child.array.index is not None
            reactor.apply(job.job_id, lifecycle.ChildFinished(child.array.index, child.status == SUCCEEDED))
        reactor.create_children(job.job_id)
        reactor.apply(job.job_id, lifecycle.CheckChildren())
        report.recounted.append(job.job_id)
        return
    reactor.apply(job.job_id, lifecycle.Evaluate())
    report.settled.append(job.job_id)
