"""Concurrency-cap counters in the item store, and the counts a job's write moves (docs/adr/0030).

- counter: pk "CAP", sk "<scope>" (domain/caps.py `scope`); body {"running": n}. An array's counter expires (TTL)
  like a dependency edge; a queue's and a share's live as long as their scope is used.

`cap_moves(before, after)` are the Puts a job's own conditional write carries when its attempt starts or ends
(store/jobs.py `JobRepository.save`, as consumable units are): each on the counter's version, so two claims racing
for the last place under a cap cannot both commit (on DynamoDB, one TransactWriteItems with the job's put; on
SQLite, one transaction). A job's end reported twice gives its place back once (the second report writes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.domain import caps
from chalicelib.domain.jobs import ACTIVE, Job
from chalicelib.store.port import Item, ItemStore, Put
from chalicelib.store.repository import expect_of

CAP_PK = "CAP"
ARRAY_RETENTION_SECONDS = 90 * 24 * 3600  # as store/jobs.py EDGE_RETENTION_SECONDS


def holds(job: Job) -> bool:
    """Whether the job holds a place under its caps: an attempt is in flight."""
    return bool(job.caps) and job.status in ACTIVE and job.current is not None


class CapRepository:
    def __init__(self, items: ItemStore) -> None:
        self.items = items

    def running(self, scopes: Iterable[str]) -> dict[str, int]:
        """The running count of each scope (one batch read; a scope never used counts 0)."""
        wanted = sorted(set(scopes))
        found = {i.sk: int(i.body.get("running", 0)) for i in self.items.batch_get([(CAP_PK, s) for s in wanted])}
        return {s: found.get(s, 0) for s in wanted}

    def cap_moves(self, before: Job | None, after: Job) -> list[Put]:
        """The counter writes that go with saving `after` over `before` (the job as stored): none, one place taken
        under each of `after.caps` (raises caps.AtLimit when a scope is full), or the places `before` held given
        back."""
        was, now = before is not None and holds(before), holds(after)
        if was == now:
            return []
        held = after.caps if now else (before.caps if before is not None else {})
        found = {i.sk: i for i in self.items.batch_get([(CAP_PK, s) for s in held])}
        puts: list[Put] = []
        for scope_key, limit in held.items():
            item = found.get(scope_key)
            count = int(item.body.get("running", 0)) if item is not None else 0
            if now:
                if count >= limit:
                    raise caps.AtLimit(caps.reason(scope_key, limit))
                count += 1
            elif item is None:
                continue  # nothing to give back to
            else:
                count = max(0, count - 1)
            array = scope_key.startswith(caps.ARRAY + "#")
            expires = after.updated_at // 1000 + ARRAY_RETENTION_SECONDS if array else None
            version = item.version if item is not None else 0
            puts.append(Put(Item(CAP_PK, scope_key, {"running": count}, expires_at=expires), expect_of(version)))
        return puts
