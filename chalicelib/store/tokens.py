"""Client-token claims of idempotent SubmitJob (domain/idempotency.py, docs/adr/0029): pk "TOKEN#<token>", sk "".

A claim is written in the job's insert transaction (`JobRepository.create_with_edges`), so a token names a job only if
that job was written, and two concurrent submits with one token cannot both insert: one loses the claim's condition.
It expires with DynamoDB's TTL (a while after `expires_ms`; readers compare `expires_ms` themselves) and is
overwritten, conditionally on its version, by the next submit that uses the token after it expired.
"""

from __future__ import annotations

from chalicelib.domain.idempotency import Claim
from chalicelib.store.port import Item, ItemStore, Put


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
    return Put(Item(pk, sk, body, expires_at=claim.expires_ms // 1000 + 1), version)
