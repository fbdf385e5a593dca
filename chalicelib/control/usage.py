"""Fair-share usage: a queue's policy, and the history update when an attempt stops (docs/adr/0005)."""

from __future__ import annotations

from chalicelib.control.context import Services
from chalicelib.domain import arns
from chalicelib.domain.jobs import Job
from chalicelib.domain.model import FairsharePolicy, JobQueue, SchedulingPolicy
from chalicelib.store.usage import UsageRepository


def scheduling_policy(svc: Services, queue: JobQueue) -> SchedulingPolicy | None:
    """The queue's scheduling policy; None for a FIFO queue (or a policy that vanished)."""
    if not queue.scheduling_policy_arn:
        return None
    return svc.repo.get_sp(arns.parse(queue.scheduling_policy_arn, "schedulingPolicyArn").resource)


def policy_of(svc: Services, queue: JobQueue) -> FairsharePolicy | None:
    """The queue's fair-share policy; None for a FIFO queue (or a policy that vanished)."""
    sp = scheduling_policy(svc, queue)
    return sp.fairshare if sp is not None else None


def record_attempt(svc: Services, job: Job, attempt: int) -> None:
    """Add a stopped attempt's vCPU-seconds to its share's history. Nothing to do for a job without a share, an
    attempt that never started, or a policy with shareDecaySeconds 0 (only current usage counts there)."""
    finished = next((a for a in job.attempts if a.number == attempt), None)
    if not job.share_identifier or finished is None or finished.started_at is None or finished.stopped_at is None:
        return
    queue = svc.repo.get_jq(job.queue)
    policy = policy_of(svc, queue) if queue is not None else None
    if policy is None or policy.share_decay_seconds <= 0:
        return
    UsageRepository(svc.repo.items).record(
        job.queue,
        job.share_identifier,
        job.vcpus,
        finished.started_at,
        finished.stopped_at,
        policy.share_decay_seconds,
        svc.clock.now_ms(),
    )
