"""Typed repositories over the item store: the only place that knows the key layout (docs/adr/0002).

Resource records carry their domain dataclass as the JSON body. Listing is by key order within one partition;
page tokens are the last sort key returned, made opaque by `api/pagination.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chalicelib.domain.model import (
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    FairsharePolicy,
    JobDefinition,
    JobQueue,
    SchedulingPolicy,
    ShareWeight,
)
from chalicelib.store.port import Check, Item, ItemStore, Op, Put

CE_PK = "CE"
JQ_PK = "JQ"
SP_PK = "SP"
JD_ALL = "JD"
REVISION_WIDTH = 9


def _body(obj: Any) -> dict[str, Any]:
    body = dataclasses.asdict(obj)
    body.pop("version", None)
    return body


def jd_pk(name: str) -> str:
    return f"JD#{name}"


def rev_key(revision: int) -> str:
    return f"{revision:0{REVISION_WIDTH}d}"


# -- codecs ----------------------------------------------------------------------------------------------------


def ce_from_item(item: Item) -> ComputeEnvironment:
    return ComputeEnvironment(**item.body, version=item.version)


def jq_from_item(item: Item) -> JobQueue:
    b = dict(item.body)
    b["compute_environment_order"] = tuple(ComputeEnvironmentOrder(**o) for o in b["compute_environment_order"])
    b["job_state_time_limit_actions"] = tuple(b["job_state_time_limit_actions"])
    return JobQueue(**b, version=item.version)


def jd_from_item(item: Item) -> JobDefinition:
    return JobDefinition(**item.body, version=item.version)


def sp_from_item(item: Item) -> SchedulingPolicy:
    b = dict(item.body)
    if b["fairshare"] is not None:
        fs = dict(b["fairshare"])
        fs["share_distribution"] = tuple(ShareWeight(**w) for w in fs["share_distribution"])
        b["fairshare"] = FairsharePolicy(**fs)
    return SchedulingPolicy(**b, version=item.version)


def ce_item(ce: ComputeEnvironment) -> Item:
    return Item(CE_PK, ce.name, _body(ce))


def jq_item(jq: JobQueue) -> Item:
    return Item(JQ_PK, jq.name, _body(jq))


def sp_item(sp: SchedulingPolicy) -> Item:
    return Item(SP_PK, sp.name, _body(sp))


def jd_item(jd: JobDefinition) -> Item:
    key = rev_key(jd.revision)
    active = (f"JDACTIVE#{jd.name}", key) if jd.status == "ACTIVE" else None
    return Item(jd_pk(jd.name), key, _body(jd), gsi1=(JD_ALL, f"{jd.name}#{key}"), gsi2=active)


def expect_of(version: int) -> int | None:
    """The `expect` for writing an entity read at `version` (0 means never stored)."""
    return version or None


class Repository:
    """Resource persistence. Every write is conditional on the version the caller read."""

    def __init__(self, items: ItemStore) -> None:
        self.items = items

    # -- compute environments --
    def get_ce(self, name: str) -> ComputeEnvironment | None:
        item = self.items.get(CE_PK, name)
        return ce_from_item(item) if item else None

    def list_ces(self, after: str | None, limit: int) -> list[ComputeEnvironment]:
        return [ce_from_item(i) for i in self.items.query("main", CE_PK, after=after, limit=limit)]

    def save_ce(self, ce: ComputeEnvironment) -> ComputeEnvironment:
        return ce_from_item(self.items.put(ce_item(ce), expect_of(ce.version)))

    def save_ce_if_queues_unchanged(self, ce: ComputeEnvironment, queues: Sequence[JobQueue]) -> None:
        """Write a CE, atomically checking that these queues are still at the versions read (one transaction)."""
        ops: list[Op] = [Put(ce_item(ce), expect_of(ce.version))]
        ops += [Check(JQ_PK, q.name, q.version) for q in queues]
        self.items.transact(ops)

    def delete_ce(self, ce: ComputeEnvironment) -> None:
        self.items.delete(CE_PK, ce.name, ce.version)

    # -- job queues --
    def get_jq(self, name: str) -> JobQueue | None:
        item = self.items.get(JQ_PK, name)
        return jq_from_item(item) if item else None

    def list_jqs(self, after: str | None = None, limit: int = 1000) -> list[JobQueue]:
        return [jq_from_item(i) for i in self.items.query("main", JQ_PK, after=after, limit=limit)]

    def save_jq(self, jq: JobQueue, *, requires: Sequence[ComputeEnvironment | SchedulingPolicy] = ()) -> None:
        """Write a queue, atomically checking that the CEs / policy it references are unchanged."""
        ops: list[Op] = [Put(jq_item(jq), expect_of(jq.version))]
        for dep in requires:
            pk = CE_PK if isinstance(dep, ComputeEnvironment) else SP_PK
            ops.append(Check(pk, dep.name, dep.version))
        self.items.transact(ops)

    def delete_jq(self, jq: JobQueue) -> None:
        self.items.delete(JQ_PK, jq.name, jq.version)

    # -- job definitions --
    def get_jd(self, name: str, revision: int) -> JobDefinition | None:
        item = self.items.get(jd_pk(name), rev_key(revision))
        return jd_from_item(item) if item else None

    def latest_jd(self, name: str) -> JobDefinition | None:
        items = self.items.query("main", jd_pk(name), descending=True, limit=1)
        return jd_from_item(items[0]) if items else None

    def latest_active_jd(self, name: str) -> JobDefinition | None:
        items = self.items.query("gsi2", f"JDACTIVE#{name}", descending=True, limit=1)
        return jd_from_item(items[0]) if items else None

    def list_jd_revisions(self, name: str, after: str | None, limit: int) -> list[JobDefinition]:
        return [jd_from_item(i) for i in self.items.query("main", jd_pk(name), after=after, limit=limit)]

    def list_jds(self, after: str | None, limit: int) -> list[JobDefinition]:
        return [jd_from_item(i) for i in self.items.query("gsi1", JD_ALL, after=after, limit=limit)]

    def save_jd(self, jd: JobDefinition) -> JobDefinition:
        return jd_from_item(self.items.put(jd_item(jd), expect_of(jd.version)))

    # -- scheduling policies --
    def get_sp(self, name: str) -> SchedulingPolicy | None:
        item = self.items.get(SP_PK, name)
        return sp_from_item(item) if item else None

    def list_sps(self, after: str | None, limit: int) -> list[SchedulingPolicy]:
        return [sp_from_item(i) for i in self.items.query("main", SP_PK, after=after, limit=limit)]

    def save_sp(self, sp: SchedulingPolicy) -> SchedulingPolicy:
        return sp_from_item(self.items.put(sp_item(sp), expect_of(sp.version)))

    def delete_sp(self, sp: SchedulingPolicy) -> None:
        self.items.delete(SP_PK, sp.name, sp.version)
