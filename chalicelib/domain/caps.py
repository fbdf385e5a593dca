"""Concurrency caps: at most N running jobs of an array, a job queue or a fair-share identifier. Pure.

A batchplane extension to AWS Batch (docs/adr/0030-concurrency-caps-and-cost.md), set through tags, the one
free-form channel a stock boto3 client and the AWS CLI can send on every resource (botocore validates member names
and types client-side, so an extra request member is not an option; docs/adr/0029):

- `batchplane:maxRunning` = N on an array job (SubmitJob `tags`): at most N of its children STARTING or RUNNING
  at once (Slurm's `--array=0-999%N`);
- `batchplane:maxRunning` = N on a job queue (CreateJobQueue `tags`, TagResource): at most N of its jobs at once;
- `batchplane:maxRunning:<shareIdentifier>` = N on a scheduling policy: at most N jobs of that share at once, in
  each queue the policy is attached to.

A client that ignores them (AWS itself) keeps the tags as plain tags and runs the jobs uncapped.

The caps a job is under are decided by the dispatcher from the tags as they are when it looks (`caps_of`), so a
cap set, changed or removed applies to the jobs still waiting. The claim records them on the job (`Job.caps`); the
running count of each scope is a counter item moved in the job's own conditional write, as consumable units are
(store/caps.py), so two dispatchers racing cannot exceed a cap. Jobs already running when a cap was first set did
not take from its counter: a new cap counts the jobs that start after it.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import Job
from chalicelib.domain.model import JobQueue, SchedulingPolicy
from chalicelib.domain.validation import fail

TAG = "batchplane:maxRunning"
SHARE_TAG_PREFIX = TAG + ":"
MAX_CAP = 1_000_000

# AWS documents no reason for this; batchplane's own, in AWS's `CODE - text` shape. CAPACITY: it passes when a
# running job ends, and it matches no jobStateTimeLimitActions reason (like batchplane's other CAPACITY reasons).
REASON = "CAPACITY:CONCURRENCY_LIMIT - {what} is at its limit of {limit} running job(s) (tag {tag})."

ARRAY, QUEUE, SHARE = "A", "Q", "S"


class AtLimit(InvalidRequest):
    """A claim would exceed a cap another claim reached since the dispatcher looked: the claim is not made and the
    next cycle re-plans. Never reaches the wire (control/react.py catches it, as consumables.Unavailable)."""


def parse(value: str, field: str) -> int:
    """A cap tag's value: a whole number from 1 to MAX_CAP."""
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_CAP:
        raise fail(field, f"must be a whole number from 1 to {MAX_CAP} (a concurrency cap); got {value!r}")
    return int(text)


def check_tags(tags: Mapping[str, str] | None, field: str, *, shares: bool = False) -> None:
    """Refuse a cap tag whose value is not a cap (and, on a scheduling policy, one naming no share identifier)."""
    for key, value in (tags or {}).items():
        if key == TAG:
            parse(value, f"{field}.{key}")
        elif key.startswith(SHARE_TAG_PREFIX):
            if not shares:
                raise fail(f"{field}.{key}", f"only a scheduling policy takes {SHARE_TAG_PREFIX}<shareIdentifier>")
            if not key[len(SHARE_TAG_PREFIX) :]:
                raise fail(f"{field}.{key}", "must name a share identifier after the colon")
            parse(value, f"{field}.{key}")


def _cap(tags: Mapping[str, str] | None, key: str) -> int | None:
    value = (tags or {}).get(key)
    if value is None:
        return None
    try:
        return parse(value, key)
    except InvalidRequest:
        return None  # written before caps were checked, or by hand: not a cap


def scope(kind: str, *names: str) -> str:
    return "#".join((kind, *names))


def caps_of(
    *,
    queue: str,
    queue_tags: Mapping[str, str] | None,
    job_tags: Mapping[str, str] | None,
    parent_id: str | None,
    share: str | None,
    policy_tags: Mapping[str, str] | None,
) -> tuple[tuple[str, int], ...]:
    """The (scope, limit) pairs a job is under: its queue's cap, its share's, and (an array child) its array's."""
    out: list[tuple[str, int]] = []
    if (n := _cap(queue_tags, TAG)) is not None:
        out.append((scope(QUEUE, queue), n))
    if share and (n := _cap(policy_tags, SHARE_TAG_PREFIX + share)) is not None:
        out.append((scope(SHARE, queue, share), n))
    if parent_id and (n := _cap(job_tags, TAG)) is not None:
        out.append((scope(ARRAY, parent_id), n))
    return tuple(out)


def of_job(job: Job, queue: JobQueue, sp: SchedulingPolicy | None) -> tuple[tuple[str, int], ...]:
    """The caps the job is under now, from the tags of its queue, its queue's policy and (an array child) its own,
    which it has from its parent."""
    return caps_of(
        queue=queue.name,
        queue_tags=queue.tags,
        job_tags=job.tags,
        parent_id=job.array.parent_id if job.array is not None else None,
        share=job.share_identifier,
        policy_tags=sp.tags if sp is not None else None,
    )


def describe(scope_key: str) -> tuple[str, str]:
    """(what the scope is, the tag that sets it), for the reason."""
    kind, _, rest = scope_key.partition("#")
    if kind == QUEUE:
        return f"The job queue {rest}", TAG
    if kind == SHARE:
        queue, _, share = rest.partition("#")
        return f"The share identifier {share} in job queue {queue}", SHARE_TAG_PREFIX + share
    return f"The array job {rest}", TAG


def reason(scope_key: str, limit: int) -> str:
    what, tag = describe(scope_key)
    return REASON.format(what=what, limit=limit, tag=tag)


def at_limit(caps: tuple[tuple[str, int], ...], running: Mapping[str, int]) -> tuple[str, int] | None:
    """The first cap (scope, limit) the job would exceed by starting now; None: it may start. Pure step 4c of
    domain/scheduling.py and the claim's check (store/caps.py)."""
    return next(((s, n) for s, n in caps if running.get(s, 0) >= n), None)
