"""The AWS runtime's outbox: a job's DynamoDB stream record (old and new image) as the change it carries.

Every job state change is one conditional write (ARCHITECTURE.md, invariant 2), and the table's stream
(NEW_AND_OLD_IMAGES) carries each committed write exactly once per shard, in order per job, until it is processed.
The effects of a change are `domain.effects.effects_of(old, new)`, the same rule the local runtime runs right after
its write; the stream handler (runtime/aws/runtime.py `on_stream`) runs them through the reactor's one executor, so
they survive a Lambda that dies between its write and its effects (docs/adr/0006, docs/adr/0023). This module
decodes records, says which state changes are published (BATCHPLANE_STATE_CHANGE_EVENTS) and which records reach
the handler at all: the event source mapping's filter (`filter_patterns`) keeps from it the records that need
nothing: those of other items, and unless every state change is published, a job's changes to STARTING and RUNNING.

Launch and StopTask are not carried: they run inline where they were decided (a claim launches at once, a terminate
stops at once), idempotent on `jobId#attempt`. Running an effect twice (a re-delivered record) is harmless: every
effect is idempotent (ChildFinished is counted once by bit, notifications are state-guarded, children are created
resumably, a publish is at-least-once like EventBridge's own delivery).

No I/O: stdlib, the domain, the store's job codec and the DynamoDB adapter's image decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.jobs import ACTIVE, PENDING, RUNNABLE, TERMINAL, Job
from chalicelib.store.dynamo import image_item
from chalicelib.store.jobs import job_from_item, job_pk

JOB_PREFIX = job_pk("")  # every job item's partition key starts with it
SCHEDULED = (RUNNABLE, *ACTIVE)  # the states the dispatcher's capacity and FIFO heads are made of

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
