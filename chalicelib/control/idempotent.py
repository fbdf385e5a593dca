"""Idempotent SubmitJob on the store: find the job a client token already made, claim a token with the insert
(domain/idempotency.py, store/tokens.py, docs/adr/0029)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.control.context import Services
from chalicelib.domain import idempotency
from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import Job
from chalicelib.store import tokens


@dataclass(frozen=True)
class FreeToken:
    """A token no live claim holds: claimed over the stored (expired) claim at `version`, else as a new item."""

    token: str
    version: int | None


def earlier_job(svc: Services, req: Mapping[str, Any]) -> Job | FreeToken | None:
    """The job an earlier submit with this request's token made; the free token to claim; None without a token.
    A token claimed by another request is refused (InvalidRequest). A claimed job that no longer exists (removed
    after its retention) frees its token."""
    token = idempotency.token_of(req)
    if token is None:
        return None
    claim, version = tokens.claim_of(svc.repo.items, token)
    job_id = idempotency.claimed_job(claim, req, svc.clock.now_ms())
    if job_id is not None:
        job = svc.jobs.get(job_id)
        if job is not None:
            return job
    return FreeToken(token, version)


def create(
    svc: Services, job: Job, edges: Sequence[str], token: FreeToken | None, req: Mapping[str, Any]
) -> Job | None:
    """Insert the job with its edges and, with a token, its claim in the same transaction. None when a concurrent
    submit with the same token claimed it first: the caller returns that submit's job (`earlier_job`)."""
    if token is None:
        return svc.jobs.create_with_edges(job, edges)
    claim = idempotency.new_claim(token.token, job.job_id, req, job.created_at)
    try:
        return svc.jobs.create_with_edges(job, edges, tokens.claim_put(claim, token.version))
    except Conflict as e:
        if e.key != "|".join(tokens.token_key(token.token)):
            raise
        return None


def winner(svc: Services, req: Mapping[str, Any]) -> Job:
    """The job of the concurrent submit that claimed the token first."""
    earlier = earlier_job(svc, req)
    if not isinstance(earlier, Job):  # claimed, yet no live claim of a job that exists: cannot happen in 24 h
        raise Conflict("|".join(tokens.token_key(idempotency.token_of(req) or "")), None)
    return earlier
