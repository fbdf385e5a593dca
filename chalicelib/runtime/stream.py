"""The AWS runtime's effect log: a job's DynamoDB stream record (old and new image) -> the effects of that change.

Every job state change is one conditional write (ARCHITECTURE.md, invariant 2), and the table's stream
(NEW_AND_OLD_IMAGES) carries each committed write exactly once per shard, in order per job, until it is processed.
So the effects that `lifecycle.transition` decided for a change, and that do not have to happen inline, are
re-derived here from the two images and carried out by the stream handler: they survive a Lambda that dies
between its write and its effects (docs/adr/0006-aws-event-path.md).

| change (old -> new image) | effect |
|---|---|
| inserted, or status changed | Publish ("Batch Job State Change") if BATCHPLANE_STATE_CHANGE_EVENTS says so |
| status became RUNNABLE, or became terminal from RUNNABLE/STARTING/RUNNING | WakeDispatcher (new work, freed capacity,
  a freed queue head) |
| status became SUCCEEDED/FAILED (not on insert: nothing can depend on a job yet) | NotifyDependents |
| ... and the job is an array child | NotifyParent |
| array parent PENDING, no pending dependency, not cancelled, children_created < size | CreateChildren |
| array parent newly cancelled / terminated while PENDING | CancelChildren(terminate=...) |

The event source mapping's filter (`filter_patterns`) keeps from the handler the records that need nothing: those of
other items, and unless every state change is published, a job's changes to STARTING and RUNNING.

Launch and StopTask are not here: they run inline where they were decided (a claim launches at once, a terminate
stops at once), idempotent on `jobId#attempt`. Deriving an effect twice (a re-delivered record) is harmless: every
effect is idempotent (ChildFinished is counted once by bit, notifications are state-guarded, children are created
resumably, a publish is at-least-once like EventBridge's own delivery).

No I/O: stdlib, the domain, the store's job codec and the DynamoDB adapter's image decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import ACTIVE, DEPENDENCY_FAILED, PENDING, RUNNABLE, SUCCEEDED, TERMINAL, Job
from chalicelib.store.dynamo import image_item
from chalicelib.store.jobs import job_from_item, job_pk

JOB_PREFIX = job_pk("")  # every job item's partition key starts with it
SCHEDULED = (RUNNABLE, *ACTIVE)  # the states the dispatcher's capacity and FIFO heads are made of

# The effect types the stream carries; the reactor leaves them alone on AWS (Services.stream_effects).
STREAM_EFFECTS: frozenset[type[lifecycle.Effect]] = frozenset(
    {
        lifecycle.Publish,
        lifecycle.NotifyDependents,
        lifecycle.NotifyParent,
        lifecycle.CreateChildren,
        lifecycle.CancelChildren,
        lifecycle.WakeDispatcher,
    }
)

# Which "Batch Job State Change" events go to EventBridge (BATCHPLANE_STATE_CHANGE_EVENTS; docs/adr/0010): every
# persisted state change, only SUCCEEDED and FAILED, or none. Each is a custom event at $1 per million.
ALL, TERMINAL_ONLY, NONE = "ALL", "TERMINAL", "NONE"
STATE_CHANGE_EVENTS = (ALL, TERMINAL_ONLY, NONE)
DEFAULT_STATE_CHANGE_EVENTS = TERMINAL_ONLY


def publishes(mode: str, job: Job) -> bool:
    """Whether a persisted state change to `job.status` is published under `mode`."""
    return mode == ALL or (mode == TERMINAL_ONLY and job.status in TERMINAL)


# Lambda's event source filter: only job items reach the handler (edges, resources and usage records do not).
FILTER_PATTERN: dict[str, Any] = {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": JOB_PREFIX}]}}}}

# The states whose records may need a reaction besides Publish: a wake (RUNNABLE), array children (a parent is
# PENDING until it ends), notifications (SUCCEEDED, FAILED). A change to STARTING or RUNNING only publishes, and an
# array parent is never STARTING or RUNNING.
REACTING = (PENDING, RUNNABLE, *TERMINAL)
# gsi1 "Q#<queue>#<STATUS>" / "QC#..." (store/jobs.py), gsi2 "ARR#<parent>#<STATUS>"; STARTING and RUNNING share
# the "status" ACTIVE (docs/adr/0013), which is not a REACTING one either
_INDEX_PARTITIONS = ("g1p", "g2p")


def filter_patterns(mode: str) -> list[dict[str, Any]]:
    """The stream event source mapping's FilterCriteria patterns (a record invokes the handler when one matches):
    every job record when every state change is published; otherwise only records whose new image is in a REACTING
    state, read from the end of the item's index partition keys (every job has gsi1's but a finished array child,
    which has gsi2's), so that the claim and RUNNING writes of a job never invoke the handler."""
    if mode == ALL:
        return [FILTER_PATTERN]
    suffixes = [{"suffix": f"#{status}"} for status in REACTING]
    return [
        {"dynamodb": {**FILTER_PATTERN["dynamodb"], "NewImage": {attribute: {"S": suffixes}}}}
        for attribute in _INDEX_PARTITIONS
    ]


@dataclass(frozen=True)
class Change:
    """One stream record of a job item."""

    sequence: str
    old: Job | None
    new: Job | None  # None: the item was deleted (e.g. expired)


def _image_job(image: Mapping[str, Any] | None) -> Job | None:
    """The job in a stream image (DynamoDB JSON, as the DynamoDB adapter stores it: store/dynamo.image_item)."""
    if not image:
        return None
    pk = image.get("pk", {}).get("S", "")
    if not pk.startswith(JOB_PREFIX):
        return None
    return job_from_item(image_item(image))


def decode(record: Mapping[str, Any]) -> Change | None:
    """The job change a Lambda stream record carries; None for a record of any other item."""
    ddb = record.get("dynamodb") or {}
    keys = ddb.get("Keys") or {}
    if not str(keys.get("pk", {}).get("S", "")).startswith(JOB_PREFIX):
        return None
    return Change(str(ddb.get("SequenceNumber", "")), _image_job(ddb.get("OldImage")), _image_job(ddb.get("NewImage")))


def effects(old: Job | None, new: Job | None) -> tuple[lifecycle.Effect, ...]:
    """The stream-carried effects of one persisted change (see the module table)."""
    if new is None:
        return ()
    out: list[lifecycle.Effect] = []
    status_changed = old is None or old.status != new.status
    if status_changed:
        out.append(lifecycle.Publish())
    newly_terminal = old is not None and old.status not in TERMINAL and new.status in TERMINAL
    if newly_terminal:
        ok = new.status == SUCCEEDED
        out.append(lifecycle.NotifyDependents(ok))
        if new.is_array_child:
            out.append(lifecycle.NotifyParent(ok))
    if new.is_array_parent:
        out += _parent_effects(old, new)
    # lifecycle also wakes when a PENDING job (or an array parent) finishes; that frees nothing to schedule.
    left = old is not None and old.status in SCHEDULED and new.status not in SCHEDULED
    if status_changed and (new.status == RUNNABLE or left):
        out.append(lifecycle.WakeDispatcher())
    return tuple(out)


def _parent_effects(old: Job | None, new: Job) -> list[lifecycle.Effect]:
    assert new.array is not None and new.array.size is not None
    out: list[lifecycle.Effect] = []
    stopped = new.is_cancelled or new.is_terminated
    reason = new.status_reason or ""
    if new.status == PENDING:
        if not new.pending and not stopped and new.array.children_created < new.array.size:
            out.append(lifecycle.CreateChildren())
        if new.is_terminated and not (old is not None and old.is_terminated):
            out.append(lifecycle.CancelChildren(reason, terminate=True))
        elif new.is_cancelled and not (old is not None and old.is_cancelled):
            out.append(lifecycle.CancelChildren(reason, terminate=False))
    elif (
        new.status in TERMINAL
        and old is not None
        and old.status not in TERMINAL
        and reason.startswith(DEPENDENCY_FAILED)
        and new.array.children_created > 0
    ):
        out.append(lifecycle.CancelChildren(reason, terminate=False))  # lifecycle._fail(children=True)
    return out
