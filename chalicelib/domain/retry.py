"""retryStrategy and evaluateOnExit (spec §4.6). Pure.

A job's retry strategy is typed (`RetryStrategy`, `ExitRule`): built once from the wire at submit
(`RetryStrategy.from_wire`, after validation) and rendered back for DescribeJobs and the store (`to_wire`), so the
JSON a client reads and the body a store holds are what they were when both were dicts (docs/adr/0025).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Decision = Literal["RETRY", "EXIT"]

# The wire keys of an evaluateOnExit entry, in the order botocore's model lists them (EvaluateOnExit).
_CONDITIONS = (("on_status_reason", "onStatusReason"), ("on_reason", "onReason"), ("on_exit_code", "onExitCode"))


@dataclass(frozen=True)
class ExitRule:
    """One evaluateOnExit entry. `action` as stored (lowercase since submit normalises it; an item written by an
    early version may hold it uppercase): compared case-insensitively."""

    action: str
    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None

    @property
    def retries(self) -> bool:
        return self.action.upper() == "RETRY"

    def matches(self, exit_code: int | None, reason: str | None, status_reason: str | None) -> bool:
        """Every condition the rule states matches (a rule stating none matches everything)."""
        checks = (
            (self.on_exit_code, None if exit_code is None else str(exit_code)),
            (self.on_reason, reason),
            (self.on_status_reason, status_reason),
        )
        return all(glob_match(pattern, value) for pattern, value in checks if pattern is not None)

    @classmethod
    def from_wire(cls, rule: Mapping[str, Any]) -> ExitRule:
        conditions = {name: rule[key] for name, key in _CONDITIONS if rule.get(key) is not None}
        return cls(action=str(rule["action"]), **conditions)

    def to_wire(self) -> dict[str, Any]:
        wire = {key: getattr(self, name) for name, key in _CONDITIONS if getattr(self, name) is not None}
        wire["action"] = self.action
        return wire


@dataclass(frozen=True)
class RetryStrategy:
    """A job's retryStrategy. `attempts` None: not given (one attempt); `evaluate_on_exit` None: not given (an empty
    list given is kept, so it renders back as given)."""

    attempts: int | None = None
    evaluate_on_exit: tuple[ExitRule, ...] | None = None

    @property
    def max_attempts(self) -> int:
        return self.attempts or 1

    @classmethod
    def from_wire(cls, strategy: Mapping[str, Any] | None) -> RetryStrategy | None:
        """The typed strategy of a wire (or stored) retryStrategy; None for none or an empty one (`{}`)."""
        if not strategy:
            return None
        rules = strategy.get("evaluateOnExit")
        attempts = strategy.get("attempts")
        return cls(
            attempts=int(attempts) if attempts is not None else None,
            evaluate_on_exit=None if rules is None else tuple(ExitRule.from_wire(r) for r in rules),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {}
        if self.attempts is not None:
            wire["attempts"] = self.attempts
        if self.evaluate_on_exit is not None:
            wire["evaluateOnExit"] = [r.to_wire() for r in self.evaluate_on_exit]
        return wire


def glob_match(pattern: str, value: str | None) -> bool:
    """Batch's patterns: exact, or a prefix when the pattern ends with '*' ("*" alone matches anything)."""
    if value is None:
        return pattern == "*"
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def evaluate(
    strategy: RetryStrategy | None,
    attempt_number: int,
    exit_code: int | None,
    reason: str | None,
    status_reason: str | None,
) -> Decision:
    """After a failed attempt: RETRY (back to RUNNABLE) or EXIT (FAILED).

    No attempts left -> EXIT. Otherwise the first matching evaluateOnExit rule decides; no rule matching -> RETRY.
    """
    if strategy is None or attempt_number >= strategy.max_attempts:
        return "EXIT"
    for rule in strategy.evaluate_on_exit or ():
        if rule.matches(exit_code, reason, status_reason):
            return "RETRY" if rule.retries else "EXIT"
    return "RETRY"


def normalized(strategy: Mapping[str, Any]) -> dict[str, Any]:
    """retryStrategy as AWS stores it: evaluateOnExit actions are case-insensitive and returned lowercase
    ("RETRY" comes back as "retry")."""
    rules = strategy.get("evaluateOnExit")
    if not rules:
        return dict(strategy)
    return {**strategy, "evaluateOnExit": [{**r, "action": str(r["action"]).lower()} for r in rules]}
