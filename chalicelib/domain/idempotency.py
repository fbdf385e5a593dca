"""Idempotent SubmitJob: a client token makes a retried submit return the first job (docs/adr/0029). Pure.

The token travels as the tag `batchplane:clientToken`: SubmitJob has no clientToken member and botocore refuses
unknown members client-side, but any tag passes, and AWS itself would simply keep it as a tag. The first submit with a
token claims it in the same write as the job's insert (store/tokens.py); a later submit with that token within
TOKEN_TTL_MS gets the claimed job back when its request is the same, and a ClientException when it is not (as AWS's
idempotent APIs answer a reused token with other parameters).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.errors import InvalidRequest

TOKEN_TAG = "batchplane:clientToken"
TOKEN_TTL_MS = 24 * 3600 * 1000  # as ECS RunTask's clientToken and EC2's: a token is remembered for 24 hours
MAX_TOKEN_CHARS = 64  # EC2's and SubmitServiceJob's clientToken bound


@dataclass(frozen=True)
class Claim:
    """A token's claim: which job it made, what the request looked like, until when it holds."""

    token: str
    job_id: str
    fingerprint: str
    expires_ms: int

    def live(self, now_ms: int) -> bool:
        return now_ms < self.expires_ms


def token_of(req: Mapping[str, Any]) -> str | None:
    """The request's client token, checked; None without one."""
    token = (req.get("tags") or {}).get(TOKEN_TAG)
    if token is None:
        return None
    if not 1 <= len(token) <= MAX_TOKEN_CHARS or not token.isprintable():
        raise InvalidRequest(f"tags[{TOKEN_TAG!r}] must be 1-{MAX_TOKEN_CHARS} printable characters")
    return str(token)


def fingerprint(req: Mapping[str, Any]) -> str:
    """What makes two submits "the same": the whole request, key order aside (a retry sends the same body)."""
    canonical = json.dumps(req, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_claim(token: str, job_id: str, req: Mapping[str, Any], now_ms: int) -> Claim:
    return Claim(token, job_id, fingerprint(req), now_ms + TOKEN_TTL_MS)


def claimed_job(claim: Claim | None, req: Mapping[str, Any], now_ms: int) -> str | None:
    """The job a live claim made for this same request; None when the token is free (never used, or expired).
    The same token with another request is refused."""
    if claim is None or not claim.live(now_ms):
        return None
    if claim.fingerprint != fingerprint(req):
        raise InvalidRequest(
            f"tags[{TOKEN_TAG!r}]: client token {claim.token!r} was already used for job {claim.job_id} with "
            "different parameters; use a new token for a different job"
        )
    return claim.job_id
