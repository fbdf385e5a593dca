"""Conditional dependencies (docs/adr/0029): besides AWS's success-only dependency, a dependent may wait for its
dependency to end whatever its outcome (AFTER_ANY, Slurm's `afterany`) or to fail (AFTER_NOT_OK, `afternotok`). Pure.

They are extra values of `dependsOn[].type`, which a stock client sends as it sends N_TO_N (botocore checks the member
and its type, not the enum's values). A dependency whose condition can no longer be met fails its dependent, as a
failed success-only dependency does on AWS, with the reason `CONDITION_NOT_MET: <id> SUCCEEDED (AFTER_NOT_OK)`; a
dependent of that job sees it FAILED like any other. A dependency removed after its retention before its dependent
learned its end counts as ended, outcome unknown: enough for AFTER_ANY, not for AFTER_NOT_OK.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.domain.jobs import DEPENDENCY_FAILED, FAILED, SUCCEEDED, Dependency, Job

AFTER_ANY = "AFTER_ANY"
AFTER_NOT_OK = "AFTER_NOT_OK"
CONDITIONS = (AFTER_ANY, AFTER_NOT_OK)
CONDITION_NOT_MET = "Dependency condition not met"


def of(depends_on: Iterable[Dependency], dependency_id: str) -> str | None:
    """The condition the job puts on `dependency_id`: AFTER_ANY, AFTER_NOT_OK, or None (it must succeed)."""
    return next((d.type for d in depends_on if d.job_id == dependency_id and d.type in CONDITIONS), None)


def met(condition: str | None, succeeded: bool) -> bool:
    """Whether a dependency that ended (`succeeded` or not) lets the dependent go on."""
    if condition == AFTER_ANY:
        return True
    return succeeded != (condition == AFTER_NOT_OK)


def reason(dependency_id: str, condition: str | None, succeeded: bool, *, gone: bool = False) -> str:
    """Why a dependent fails when a dependency ended without meeting its condition."""
    if condition == AFTER_NOT_OK and succeeded:
        return f"{CONDITION_NOT_MET}: {dependency_id} SUCCEEDED ({AFTER_NOT_OK})"
    return f"{DEPENDENCY_FAILED}: {dependency_id}{' no longer exists' if gone else ''}"


@dataclass(frozen=True)
class AtSubmit:
    """A new job's dependencies as they are when it is submitted: those still running, and the reason it fails at
    once if one already ended without meeting its condition."""

    pending: tuple[str, ...]
    failure: str | None


def at_submit(depends_on: Iterable[Dependency], targets: Iterable[Job]) -> AtSubmit:
    deps = tuple(depends_on)
    pending: list[str] = []
    for target in targets:
        if target.status not in (SUCCEEDED, FAILED):
            pending.append(target.job_id)
            continue
        condition, succeeded = of(deps, target.job_id), target.status == SUCCEEDED
        if not met(condition, succeeded):
            return AtSubmit((), reason(target.job_id, condition, succeeded))
    return AtSubmit(tuple(dict.fromkeys(pending)), None)
