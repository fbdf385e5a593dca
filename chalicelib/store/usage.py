"""Fair-share usage history, one record per job queue (docs/adr/0005-fair-share.md).

- pk "USAGE#<queue name>", sk "": body {"shares": {shareIdentifier: decayed vCPU-seconds}, "at": epoch ms}.

Written when an attempt of a fair-share job stops (control/usage.py), read once per dispatch cycle. The decay
itself is domain/fairshare.py; this module only knows the key and the compare-and-set loop.
"""

from __future__ import annotations

from chalicelib.domain import fairshare
from chalicelib.domain.errors import Conflict
from chalicelib.store.port import Item, ItemStore
from chalicelib.store.repository import expect_of

RETRIES = 16


def usage_pk(queue: str) -> str:
    return f"USAGE#{queue}"


def history_from_item(item: Item) -> fairshare.History:
    return fairshare.History(
        {str(k): float(v) for k, v in item.body.get("shares", {}).items()}, int(item.body.get("at", 0)), item.version
    )


class UsageRepository:
    def __init__(self, items: ItemStore) -> None:
        self.items = items

    def get(self, queue: str) -> fairshare.History:
        item = self.items.get(usage_pk(queue), "")
        return history_from_item(item) if item else fairshare.History()

    def record(
        self, queue: str, share: str, vcpus: float, started_at: int, stopped_at: int, decay_seconds: int, now: int
    ) -> fairshare.History:
        """Add one finished attempt to the queue's history: one compare-and-set, re-read on a lost race."""
        for _ in range(RETRIES):
            history = self.get(queue)
            updated = fairshare.record(history, share, vcpus, started_at, stopped_at, decay_seconds, now)
            body = {"shares": dict(updated.shares), "at": updated.at}
            try:
                stored = self.items.put(Item(usage_pk(queue), "", body), expect_of(history.version))
            except Conflict:
                continue
            return history_from_item(stored)
        raise Conflict(usage_pk(queue), None)
