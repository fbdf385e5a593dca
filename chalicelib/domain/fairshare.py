"""Fair-share scheduling (spec §5.4, docs/adr/0005-fair-share.md). Pure.

Usage of a share identifier, in vCPUs:

    usage(share) = running vCPUs now  +  H(share) / shareDecaySeconds

H is the share's historical vCPU-seconds with exponential decay of time constant tau = shareDecaySeconds: every
vCPU-second used t seconds ago counts e^(-t/tau). A steady load of v vCPUs makes H converge to v*tau, the amount a
sliding window of tau seconds would hold, so H/tau is the share's average vCPUs "over shareDecaySeconds" and both
terms are in vCPUs. With shareDecaySeconds 0 only the current usage counts (the older UG reading of 0).

An attempt contributes when it stops: the exact decayed integral of its vCPUs over [startedAt, stoppedAt], i.e.
v*tau*(1 - e^(-d/tau)) for a duration d, as of stoppedAt. While it runs it counts through the running term.

The share that is served next is the one with the lowest `weightFactor * usage` (weight 0.125 gets 8x the
capacity of weight 1); placements within a cycle add to the share's running vCPUs at once. Within a share, a
higher schedulingPriority goes first, then submission order. Ties between shares go to the share whose next job
was submitted first, then to the share's name, so a cycle is deterministic.

computeReservation r: while n shares are active, the queue keeps (r/100)^n of its compute environments' vCPUs
free for shares that are not active yet. A share is active while it has RUNNABLE, STARTING or RUNNING jobs
(batchplane does not count PENDING ones: see the ADR).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from chalicelib.domain.model import FairsharePolicy

DEFAULT_WEIGHT = 1.0
NEGLIGIBLE_VCPU_SECONDS = 1e-3  # history below this is dropped, so the record does not grow without bound
_PRECISION = 9  # usage keys are rounded, so equal usages tie exactly and the tie-breaks decide


def weight_of(policy: FairsharePolicy, share: str) -> float:
    """The share's weightFactor: its exact entry, else the longest matching prefix entry (`UserA*` applies to every
    share starting with `UserA`, each on its own), else 1.0."""
    best: tuple[int, float] | None = None
    for entry in policy.share_distribution:
        ident = entry.share_identifier
        if ident == share:
            return entry.weight_factor
        if ident.endswith("*") and share.startswith(ident[:-1]) and (best is None or len(ident) > best[0]):
            best = (len(ident), entry.weight_factor)
    return best[1] if best else DEFAULT_WEIGHT


# -- history ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """A queue's decayed vCPU-seconds per share, valid as of `at` (epoch ms). Persisted (store/usage.py)."""

    shares: Mapping[str, float] = field(default_factory=dict)
    at: int = 0
    version: int = 0


def decay_factor(elapsed_ms: int, decay_seconds: int) -> float:
    """What one vCPU-second is worth `elapsed_ms` later."""
    if decay_seconds <= 0:
        return 0.0
    return math.exp(-max(0, elapsed_ms) / (decay_seconds * 1000.0))


def attempt_usage(vcpus: float, started_at: int, stopped_at: int, decay_seconds: int) -> float:
    """An attempt's decayed vCPU-seconds as of its stop: the integral of vcpus * e^(-(stop-t)/tau) over its run."""
    if decay_seconds <= 0 or stopped_at <= started_at:
        return 0.0
    duration = (stopped_at - started_at) / 1000.0
    return vcpus * decay_seconds * -math.expm1(-duration / decay_seconds)


def decayed(history: History, now: int, decay_seconds: int) -> dict[str, float]:
    """The history's vCPU-seconds as of `now`."""
    factor = decay_factor(now - history.at, decay_seconds)
    return {share: used * factor for share, used in history.shares.items()}


def record(
    history: History, share: str, vcpus: float, started_at: int, stopped_at: int, decay_seconds: int, now: int
) -> History:
    """The history with one finished attempt added, as of max(now, history.at) (a late or out-of-order stop is
    decayed from its stoppedAt; the record's clock never goes back)."""
    at = max(now, history.at)
    shares = decayed(history, at, decay_seconds)
    added = attempt_usage(vcpus, started_at, stopped_at, decay_seconds) * decay_factor(at - stopped_at, decay_seconds)
    shares[share] = shares.get(share, 0.0) + added
    kept = {s: u for s, u in shares.items() if u >= NEGLIGIBLE_VCPU_SECONDS}
    return History(kept, at, history.version)


# -- the state a cycle sees ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareState:
    """A fair-share queue as one cycle sees it."""

    policy: FairsharePolicy
    running: Mapping[str, float] = field(default_factory=dict)  # vCPUs of the queue's STARTING/RUNNING jobs
    history: Mapping[str, float] = field(default_factory=dict)  # decayed vCPU-seconds, as of the cycle

    def usage(self, share: str, placed: float = 0.0) -> float:
        """The share's usage in vCPUs; `placed` is what this cycle placed for it so far."""
        used = self.running.get(share, 0.0) + placed
        if self.policy.share_decay_seconds > 0:
            used += self.history.get(share, 0.0) / self.policy.share_decay_seconds
        return used

    def weighted(self, share: str, placed: float = 0.0) -> float:
        return round(weight_of(self.policy, share) * self.usage(share, placed), _PRECISION)


def reservation_limit(policy: FairsharePolicy, max_vcpus: float, active_shares: int) -> float:
    """The vCPUs the queue may use while `active_shares` shares are active: max * (1 - (r/100)^n)."""
    if policy.compute_reservation <= 0 or active_shares <= 0:
        return math.inf
    return max_vcpus * (1.0 - (policy.compute_reservation / 100.0) ** active_shares)


# -- the order -------------------------------------------------------------------------------------------------


class Schedulable(Protocol):
    @property
    def vcpus(self) -> float: ...

    @property
    def share_identifier(self) -> str | None: ...

    @property
    def scheduling_priority(self) -> int: ...


J = TypeVar("J", bound=Schedulable)


class ShareOrder(Generic[J]):
    """The jobs of a fair-share queue in the order the scheduler takes them.

    `peek()` is the next job; `take()` places it (its share's usage grows by its vCPUs); `skip()` passes over it
    without placing it (a job that can never run). Fed the jobs in submission order.
    """

    def __init__(self, state: ShareState, jobs: Sequence[J]) -> None:
        self.state = state
        grouped: dict[str, list[tuple[int, J]]] = {}
        for i, job in enumerate(jobs):
            grouped.setdefault(job.share_identifier or "", []).append((i, job))
        self._jobs = {
            share: deque(sorted(members, key=lambda m: (-m[1].scheduling_priority, m[0])))
            for share, members in grouped.items()
        }
        self._placed: dict[str, float] = {}
        self._heap = [self._key(share) for share in self._jobs]
        heapq.heapify(self._heap)
        self.active_shares = len(set(self._jobs) | {s for s, v in state.running.items() if v > 0})

    def _key(self, share: str) -> tuple[float, int, str]:
        return self.state.weighted(share, self._placed.get(share, 0.0)), self._jobs[share][0][0], share

    def peek(self) -> J | None:
        return self._jobs[self._heap[0][2]][0][1] if self._heap else None

    def take(self) -> None:
        self._advance(placed=True)

    def skip(self) -> None:
        self._advance(placed=False)

    def _advance(self, *, placed: bool) -> None:
        share = heapq.heappop(self._heap)[2]
        _, job = self._jobs[share].popleft()
        if placed:
            self._placed[share] = self._placed.get(share, 0.0) + job.vcpus
        if self._jobs[share]:
            heapq.heappush(self._heap, self._key(share))
