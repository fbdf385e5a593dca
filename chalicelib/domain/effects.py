"""What `lifecycle.transition` asks `control/` to do after persisting a job (its effects), and the `Outcome` that
carries them with the new job. Pure data; `lifecycle` re-exports every name, so callers say `lifecycle.Publish`."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.jobs import Job

# -- effects ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """Emit a "Batch Job State Change" event for the new state."""


@dataclass(frozen=True)
class PublishNode:
    """Emit a "Batch Job State Change" event for one node job of a multi-node parallel job (domain/nodes.py)."""

    index: int


@dataclass(frozen=True)
class Launch:
    attempt: int


@dataclass(frozen=True)
class StopTask:
    attempt: int
    reason: str


@dataclass(frozen=True)
class NotifyDependents:
    succeeded: bool


@dataclass(frozen=True)
class NotifyParent:
    succeeded: bool


@dataclass(frozen=True)
class CreateChildren:
    """Write the parent's children (from `children_created` on)."""


@dataclass(frozen=True)
class CancelChildren:
    reason: str
    terminate: bool


@dataclass(frozen=True)
class WakeDispatcher:
    pass


Effect = (
    Publish
    | PublishNode
    | Launch
    | StopTask
    | NotifyDependents
    | NotifyParent
    | CreateChildren
    | CancelChildren
    | WakeDispatcher
)


@dataclass(frozen=True)
class Outcome:
    job: Job | None
    effects: tuple[Effect, ...] = ()


UNCHANGED = Outcome(None)
