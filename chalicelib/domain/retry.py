"""retryStrategy and evaluateOnExit (spec §4.6). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Decision = Literal["RETRY", "EXIT"]


def glob_match(pattern: str, value: str | None) -> bool:
    """Batch's patterns: exact, or a prefix when the pattern ends with '*' ("*" alone matches anything)."""
    if value is None:
        return pattern == "*"
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def rule_matches(rule: Mapping[str, Any], exit_code: int | None, reason: str | None, status_reason: str | None) -> bool:
    """A rule matches when every condition it states matches."""
    checks = (
        ("onExitCode", None if exit_code is None else str(exit_code)),
        ("onReason", reason),
        ("onStatusReason", status_reason),
    )
    return all(glob_match(rule[key], value) for key, value in checks if rule.get(key) is not None)


def evaluate(
    strategy: Mapping[str, Any],
    attempt_number: int,
    exit_code: int | None,
    reason: str | None,
    status_reason: str | None,
) -> Decision:
    """After a failed attempt: RETRY (back to RUNNABLE) or EXIT (FAILED).

    No attempts left -> EXIT. Otherwise the first matching evaluateOnExit rule decides; no rule matching -> RETRY.
    """
    attempts = int(strategy.get("attempts") or 1)
    if attempt_number >= attempts:
        return "EXIT"
    for rule in strategy.get("evaluateOnExit") or []:
        if rule_matches(rule, exit_code, reason, status_reason):
            return "RETRY" if str(rule["action"]).upper() == "RETRY" else "EXIT"
    return "RETRY"


def normalized(strategy: Mapping[str, Any]) -> dict[str, Any]:
    """retryStrategy as AWS stores it: evaluateOnExit actions are case-insensitive and returned lowercase
    ("RETRY" comes back as "retry")."""
    rules = strategy.get("evaluateOnExit")
    if not rules:
        return dict(strategy)
    return {**strategy, "evaluateOnExit": [{**r, "action": str(r["action"]).lower()} for r in rules]}
