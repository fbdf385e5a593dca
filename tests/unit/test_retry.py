"""retryStrategy and evaluateOnExit (spec §4.6): pattern matching, rule matching, the retry decision."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chalicelib.domain import retry
from chalicelib.domain.retry import Decision, ExitRule, RetryStrategy, glob_match
from tests.unit.builders import a_rule, retries

HOST_GONE = "Host EC2 (instance i-0737c70432d64f82a) terminated."
OOM = "OutOfMemoryError: Container killed due to memory usage"
EXITED = "Essential container in task exited"


def rule_matches(rule: Mapping[str, Any], exit_code: int | None, reason: str | None, status_reason: str | None) -> bool:
    """The typed rule of a wire evaluateOnExit entry, matched."""
    return ExitRule.from_wire(rule).matches(exit_code, reason, status_reason)


def evaluate(
    strategy: Mapping[str, Any] | None, attempt: int, exit_code: int | None, reason: str | None, status_reason: str
) -> Decision:
    """The decision of the typed strategy of a wire retryStrategy (as submit builds it)."""
    return retry.evaluate(RetryStrategy.from_wire(strategy), attempt, exit_code, reason, status_reason)


# -- glob_match ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        # exact
        ("137", "137", True),
        ("137", "1370", False),
        ("137", "13", False),
        (EXITED, EXITED, True),
        (EXITED, EXITED.lower(), False),
        # trailing '*': a prefix
        ("Host EC2*", HOST_GONE, True),
        ("Host EC2*", "Host EC2", True),
        ("Host EC2*", "host EC2 (instance i-1) terminated.", False),
        ("Host EC2*", "The Host EC2 went away", False),
        ("13*", "137", True),
        ("13*", "1", False),
        # '*' alone: anything
        ("*", "", True),
        ("*", OOM, True),
        # a '*' that is not last is a literal character
        ("H*st", "Host", False),
        ("H*st", "H*st", True),
        # the empty pattern matches only the empty value
        ("", "", True),
        ("", "x", False),
    ],
)
def test_glob_match(pattern: str, value: str, matches: bool) -> None:
    assert glob_match(pattern, value) is matches


@pytest.mark.parametrize(("pattern", "matches"), [("*", True), ("Host*", False), ("0", False), ("", False)])
def test_glob_match_against_a_missing_value_matches_only_the_catch_all(pattern: str, matches: bool) -> None:
    # GIVEN no value (e.g. no exit code because the container never ran)
    assert glob_match(pattern, None) is matches


# -- rule_matches ----------------------------------------------------------------------------------------------


def test_a_rule_with_one_condition_matches_on_it_alone() -> None:
    rule = a_rule("RETRY", onExitCode="137")

    assert rule_matches(rule, 137, OOM, EXITED)
    assert not rule_matches(rule, 1, OOM, EXITED)


def test_a_rule_matches_only_when_every_stated_condition_matches() -> None:
    # GIVEN a rule on the exit code, the container reason and the stop reason
    rule = a_rule("EXIT", onExitCode="137", onReason="OutOfMemory*", onStatusReason="Essential*")

    # THEN all three must match
    assert rule_matches(rule, 137, OOM, EXITED)
    assert not rule_matches(rule, 1, OOM, EXITED)
    assert not rule_matches(rule, 137, "CannotPullContainerError: nope", EXITED)
    assert not rule_matches(rule, 137, OOM, HOST_GONE)


def test_a_rule_on_the_exit_code_does_not_match_a_missing_exit_code() -> None:
    assert not rule_matches(a_rule("RETRY", onExitCode="0"), None, None, HOST_GONE)
    assert rule_matches(a_rule("RETRY", onExitCode="*"), None, None, HOST_GONE)


def test_a_rule_on_the_reason_does_not_match_a_missing_reason_unless_it_is_the_catch_all() -> None:
    assert not rule_matches(a_rule("EXIT", onReason="Out*"), 1, None, EXITED)
    assert rule_matches(a_rule("EXIT", onReason="*"), 1, None, EXITED)


def test_conditions_set_to_none_are_not_stated() -> None:
    rule = {"action": "EXIT", "onExitCode": None, "onStatusReason": "Host EC2*"}

    assert rule_matches(rule, 3, None, HOST_GONE)


# -- evaluate --------------------------------------------------------------------------------------------------


def test_without_a_strategy_there_is_one_attempt() -> None:
    assert evaluate(None, 1, 1, None, EXITED) == "EXIT"
    assert evaluate({}, 1, 1, None, EXITED) == "EXIT"


def test_with_attempts_left_and_no_rules_a_failure_is_retried() -> None:
    assert evaluate(retries(3), 1, 1, None, EXITED) == "RETRY"
    assert evaluate(retries(3), 2, 1, None, EXITED) == "RETRY"


def test_when_the_attempts_are_used_up_the_job_exits() -> None:
    assert evaluate(retries(3), 3, 1, None, EXITED) == "EXIT"
    assert evaluate(retries(3), 4, 1, None, EXITED) == "EXIT"


def test_attempts_exhausted_wins_over_a_matching_retry_rule() -> None:
    strategy = retries(2, a_rule("RETRY", onExitCode="*"))

    assert evaluate(strategy, 2, 1, None, EXITED) == "EXIT"


def test_no_matching_rule_means_retry() -> None:
    strategy = retries(3, a_rule("EXIT", onExitCode="2"), a_rule("EXIT", onStatusReason="Host EC2*"))

    assert evaluate(strategy, 1, 1, None, EXITED) == "RETRY"


def test_the_first_matching_rule_decides() -> None:
    # GIVEN the Spot pattern: retry a lost host, exit on anything else
    spot = retries(3, a_rule("RETRY", onStatusReason="Host EC2*"), a_rule("EXIT", onReason="*"))
    # ... and the same rules the other way round
    reversed_ = retries(3, a_rule("EXIT", onReason="*"), a_rule("RETRY", onStatusReason="Host EC2*"))

    # WHEN the host goes away  THEN the order of the rules decides
    assert evaluate(spot, 1, None, None, HOST_GONE) == "RETRY"
    assert evaluate(reversed_, 1, None, None, HOST_GONE) == "EXIT"
    # WHEN the container fails on its own  THEN the catch-all exits
    assert evaluate(spot, 1, 1, OOM, EXITED) == "EXIT"


@pytest.mark.parametrize(("action", "decision"), [("RETRY", "RETRY"), ("retry", "RETRY"), ("Exit", "EXIT")])
def test_the_action_is_case_insensitive(action: str, decision: str) -> None:
    # GIVEN a catch-all rule ahead of an opposite one, so only the action's spelling decides
    opposite = "EXIT" if decision == "RETRY" else "RETRY"
    strategy = retries(3, a_rule(action, onExitCode="*"), a_rule(opposite, onExitCode="*"))

    assert evaluate(strategy, 1, 1, None, EXITED) == decision


# -- the typed strategy --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        {"attempts": 1},
        {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "retry"}]},
        {
            "attempts": 2,
            "evaluateOnExit": [{"onStatusReason": "a", "onReason": "b*", "onExitCode": "1", "action": "exit"}],
        },
        {"evaluateOnExit": []},
    ],
)
def test_a_strategy_renders_back_to_the_wire_form_it_was_built_from(wire: dict[str, Any]) -> None:
    typed = RetryStrategy.from_wire(wire)
    assert typed is not None and typed.to_wire() == wire


def test_no_strategy_or_an_empty_one_is_none() -> None:
    assert RetryStrategy.from_wire(None) is None
    assert RetryStrategy.from_wire({}) is None
