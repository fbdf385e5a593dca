"""Client-token claims of idempotent SubmitJob (domain/idempotency.py, docs/adr/0029): pk "TOKEN#<token>", sk "".

A claim is written in the job's insert transaction (`JobRepository.create_with_edges`), so a token names a job only if
that job was written, and two concurrent submits with one token cannot both insert: one loses the claim's condition.
It expires with DynamoDB's TTL (a while after `expires_ms`; readers compare `expires_ms` themselves) and is
overwritten, conditionally on its version, by the next submit that uses the token after it expired.

The SQLite store has no TTL: the local runtime's retention (control/retention.py) removes expired claims, found in
the index partition gsi1 "TOKENS" ordered by expiry (`expired`, `remove`). On DynamoDB that index entry is one more
index write per tokened submit, unused there (the TTL removes the claim and its index entry with it); one index
partition for all tokens takes what the queue-status partitions of the jobs themselves take.
"""

from __future__ import annotations

from chalicelib.domain.errors import Conflict
from chalicelib.domain.idempotency import Claim
from chalicelib.store.port import Item, ItemStore, Put

EXPIRY_PK = "TOKENS"  # gsi1 partition of every claim, sorted by expiry: "<expires_ms, 15 digits>#<token>"
EXPIRY_WIDTH = 15


def token_key(token: str) -> tuple[str, str]:
    return f"TOKEN#{token}", ""


def claim_of(items: ItemStore, token: str) -> tuple[Claim | None, int | None]:
    """The stored claim and its version (None, None when there is none)."""
    item = items.get(*token_key(token))
    if item is None:
        return None, None
    b = item.body
    return Claim(token, b["job_id"], b["fingerprint"], int(b["expires_ms"])), item.version


def claim_put(claim: Claim, version: int | None) -> Put:
    """The conditional write of `claim`: a new item, or over the expired one read at `version`."""
    pk, sk = token_key(claim.token)
    body = {"job_id": claim.job_id, "fingerprint": claim.fingerprint, "expires_ms": claim.expires_ms}
    expiry = (EXPIRY_PK, f"{claim.expires_ms:0{EXPIRY_WIDTH}d}#{claim.token}")
    return Put(Item(pk, sk, body, gsi1=expiry, expires_at=claim.expires_ms // 1000 + 1), version)


def expired(items: ItemStore, now_ms: int, limit: int) -> list[Item]:
    """Up to `limit` claims expired at `now_ms` (`Claim.live` no longer), the longest expired first."""
    found = items.query("gsi1", EXPIRY_PK, limit=limit)
    bound = f"{now_ms + 1:0{EXPIRY_WIDTH}d}"  # "<expires>#<token>" sorts below it when expires <= now
    return [i for i in found if i.gsi1 is not None and i.gsi1[1] < bound]


def remove(items: ItemStore, claim: Item) -> bool:
    """Delete an expired claim at the version it was read; False when a submit took the token over meanwhile (the
    claim is then live again, and stays)."""
    try:
        items.delete(claim.pk, claim.sk, claim.version)
    except Conflict:
        return False
    return True
