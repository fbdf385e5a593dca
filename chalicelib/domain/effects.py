"""What `control/` does after a job changes (its effects): the commands `lifecycle.transition` decides with an
event, and the effects a committed change carries, `effects_of(old, new)`, the one rule both runtimes run them from.
Pure; `lifecycle` re-exports every name, so callers say `lifecycle.Publish`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain import arrays
from chalicelib.domain.jobs import (
    DEPENDENCY_FAILED,
    PENDING,
    RUNNABLE,
    SUCCEEDED,
    TERMINAL,
    Job,
    node_ended,
    node_task_recorded,
)

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
class LaunchNodes:
    """A multi-node job's main node runs at `main_address`: launch the attempt's other nodes with it (docs/adr/0027;
    the launcher's `launch_nodes`, compute/port.py NodeAware). Asked again by a repeated RUNNING of the main node,
    which launches nothing twice (each node's launch is idempotent) and repairs a launch a crash cut short."""

    attempt: int
    main_address: str


@dataclass(frozen=True)
class NotifyDependents:
    succeeded: bool


@dataclass(frozen=True)
class NotifyParent:
    succeeded: bool


@dataclass(frozen=True)
class CreateChildren:
    """Write the parent's children (from `children_created` on, up to a window ahead of the finished ones)."""


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
    | LaunchNodes
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


# -- what a committed change carries ---------------------------------------------------------------------------
# An effect is either a command, bound to the event that asked for it (Launch, StopTask, LaunchNodes: they run inline
# where the event was applied, and a repeated Terminate, TimedOut or main node start asks for one without any write),
# or carried by the change:
# a function of the job before and after one committed write, `effects_of(old, new)`. Both runtimes run the carried
# effects from that one function, through the one executor (control/react.py `Reactor.run_effects`): locally right
# after the write, on AWS from the table's stream record, the durable outbox (docs/adr/0023-one-effects-pipeline.md).

COMMANDS: frozenset[type[Effect]] = frozenset({Launch, StopTask, LaunchNodes})
CARRIED: frozenset[type[Effect]] = frozenset(
    {Publish, PublishNode, NotifyDependents, NotifyParent, CreateChildren, CancelChildren, WakeDispatcher}
)


def effects_of(old: Job | None, new: Job | None) -> tuple[Effect, ...]:
    """The effects carried by one committed change of a job (`old` None: inserted; `new` None: deleted).

    | change (old -> new) | effect |
    |---|---|
    | inserted, or status changed | Publish (a multi-node job's node jobs publish with it) |
    | a node of a multi-node job ended on its own, or its task runs (ECS; in the attempt's `nodes`) | PublishNode |
    | became SUCCEEDED/FAILED (not on insert: nothing can depend on a job yet) | NotifyDependents |
    | ... and the job is an array child | NotifyParent |
    | array parent PENDING, no pending dependency, not stopped, children left to write | CreateChildren |
    | array parent newly cancelled or terminated while PENDING, or failed on a dependency | CancelChildren |
    | status became RUNNABLE, or became SUCCEEDED/FAILED | WakeDispatcher |

    CreateChildren is derived on every change of a parent with children left to write (not only the one that made
    it ready), which makes creation resumable: a creator that dies mid-way is taken over by the next change.
    Deriving an effect twice is harmless: every effect is idempotent."""
    if new is None:
        return ()
    out: list[Effect] = []
    status_changed = old is None or old.status != new.status
    if status_changed:
        out.append(Publish())
    newly_terminal = old is not None and old.status not in TERMINAL and new.status in TERMINAL
    if newly_terminal:
        ok = new.status == SUCCEEDED
        out.append(NotifyDependents(ok))
        if new.is_array_child:
            out.append(NotifyParent(ok))
    if new.is_array_parent:
        out += _parent_effects(old, new)
    out += _node_ends(old, new)
    if status_changed and (new.status == RUNNABLE or newly_terminal):
        out.append(WakeDispatcher())
    return tuple(out)


def _node_ends(old: Job | None, new: Job) -> list[Effect]:
    """A multi-node job's nodes whose own state changed in this change: ended on their own (lifecycle
    `NodeStopped`), or their task recorded running (`NodeStarted`, ECS); once per node and change."""
    now = new.current
    if now is None or not now.nodes:
        return []
    was = old.current if old is not None else None
    before = (was.nodes or {}) if was is not None and was.number == now.number else {}
    return [PublishNode(int(i)) for i in sorted(now.nodes, key=int) if _node_changed(before.get(i), now.nodes[i])]


def _node_changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    if node_ended(after) and not node_ended(before):
        return True
    return node_task_recorded(after) and not node_task_recorded(before)


def _parent_effects(old: Job | None, new: Job) -> list[Effect]:
    assert new.array is not None and new.array.size is not None
    out: list[Effect] = []
    stopped = new.is_cancelled or new.is_terminated
    reason = new.status_reason or ""
    if new.status == PENDING:
        if not new.pending and not stopped and arrays.wants_children(new.array):
            out.append(CreateChildren())
        if new.is_terminated and not (old is not None and old.is_terminated):
            out.append(CancelChildren(reason, terminate=True))
        elif new.is_cancelled and not (old is not None and old.is_cancelled):
            out.append(CancelChildren(reason, terminate=False))
    elif (
        new.status in TERMINAL
        and old is not None
        and old.status not in TERMINAL
        and reason.startswith(DEPENDENCY_FAILED)
        and new.array.children_created > 0
    ):
        out.append(CancelChildren(reason, terminate=False))  # lifecycle._fail(children=True)
    return out


def commands(effects: tuple[Effect, ...]) -> tuple[Effect, ...]:
    """The effects of an outcome that no committed change carries (they run inline where they were decided)."""
    return tuple(e for e in effects if type(e) in COMMANDS)


def in_order(carried: tuple[Effect, ...], commands: tuple[Effect, ...]) -> tuple[Effect, ...]:
    """One step's effects in the order lifecycle lists them: the state change is published before a command runs
    (a launched task must not report RUNNING before its STARTING is out), everything else after."""
    published = tuple(e for e in carried if isinstance(e, Publish))
    return (*published, *commands, *(e for e in carried if not isinstance(e, Publish)))
