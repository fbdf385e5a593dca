"""The pure parts of batchplane's extensions beyond AWS Batch (docs/adr/0029): lifted limits, conditional
dependencies, client tokens."""

from __future__ import annotations

import pytest

from chalicelib.domain import conditions, idempotency, job_spec
from chalicelib.domain.conditions import AFTER_ANY, AFTER_NOT_OK, CONDITION_NOT_MET
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import DEPENDENCY_FAILED, FAILED, PENDING, RUNNABLE, RUNNING, SUCCEEDED, Dependency, Job
from chalicelib.domain.lifecycle import DependencyFailed, DependencySucceeded, transition
from chalicelib.domain.validation import Limits, limits_from_text, parse_limits
from tests.unit.builders import a_job

LATER = 1_700_000_100_000

# -- limits as settings ---------------------------------------------------------------------------------------------


def test_without_settings_the_limits_are_aws_quotas() -> None:
    assert parse_limits([]) == Limits() == limits_from_text("") == limits_from_text(None)
    assert (Limits().max_array_size, Limits().max_dependencies) == (10_000, 20)


def test_an_operator_lifts_array_size_and_dependencies_to_their_ceilings() -> None:
    limits = limits_from_text("max-array-size=1000000, max-dependencies=1000 min-timeout-seconds=1")
    assert (limits.max_array_size, limits.max_dependencies, limits.min_timeout_seconds) == (1_000_000, 1000, 1)
    assert limits.max_tags == 50  # untouched


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("max-array-size=1000001", ["max-array-size", "between 10000 and 1000000"]),
        ("max-array-size=5", ["max-array-size", "between 10000 and 1000000"]),  # never stricter than AWS
        ("max-dependencies=lots", ["max-dependencies", "integer"]),
        ("min-timeout-seconds=61", ["min-timeout-seconds", "between 1 and 60"]),
        ("max-tags=100", ["NAME=VALUE", "max-array-size"]),  # not a settable limit
        ("max-array-size", ["NAME=VALUE"]),
    ],
)
def test_a_limit_out_of_its_bounds_is_refused_naming_it(setting: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as e:
        parse_limits([setting])
    for word in words:
        assert word in str(e.value)


def submit(**extra: object) -> dict[str, object]:
    return {"jobName": "j", "jobQueue": "q", "jobDefinition": "d", **extra}


def test_a_submit_over_a_limit_names_the_field_the_limit_and_its_setting() -> None:
    with pytest.raises(InvalidRequest) as e:
        job_spec.validate_submit(submit(arrayProperties={"size": 10_001}), Limits())
    assert "arrayProperties.size" in str(e.value) and "10000" in str(e.value) and "max-array-size" in str(e.value)
    deps = [{"jobId": f"j{i}"} for i in range(21)]
    with pytest.raises(InvalidRequest) as e:
        job_spec.validate_submit(submit(dependsOn=deps), Limits())
    assert "dependsOn" in str(e.value) and "20" in str(e.value) and "max-dependencies" in str(e.value)
    job_spec.validate_submit(submit(dependsOn=deps), parse_limits(["max-dependencies=21"]))


# -- conditional dependencies ---------------------------------------------------------------------------------------


def waiting(condition: str | None, *others: str) -> Job:
    return a_job(
        status=PENDING,
        pending=("dep", *others),
        depends_on=(Dependency("dep", condition), *(Dependency(o) for o in others)),
    )


@pytest.mark.parametrize(
    ("condition", "dependency_succeeded", "runs"),
    [
        (None, True, True),
        (None, False, False),
        (AFTER_ANY, True, True),
        (AFTER_ANY, False, True),
        (AFTER_NOT_OK, True, False),
        (AFTER_NOT_OK, False, True),
    ],
)
def test_a_dependency_ending_releases_or_fails_its_dependent_by_condition(
    condition: str | None, dependency_succeeded: bool, runs: bool
) -> None:
    job = waiting(condition)
    event = DependencySucceeded("dep") if dependency_succeeded else DependencyFailed("dep")

    outcome = transition(job, event, LATER)

    assert outcome.job is not None
    assert outcome.job.status == (RUNNABLE if runs else FAILED)
    if not runs:
        expected = CONDITION_NOT_MET if condition == AFTER_NOT_OK else DEPENDENCY_FAILED
        assert (outcome.job.status_reason or "").startswith(f"{expected}: dep")


def test_after_not_ok_that_succeeded_fails_the_dependent_saying_why() -> None:
    outcome = transition(waiting(AFTER_NOT_OK), DependencySucceeded("dep"), LATER)
    assert outcome.job is not None and outcome.job.status_reason == f"{CONDITION_NOT_MET}: dep SUCCEEDED (AFTER_NOT_OK)"


def test_a_met_condition_still_waits_for_the_other_dependencies() -> None:
    outcome = transition(waiting(AFTER_ANY, "other"), DependencyFailed("dep"), LATER)
    assert outcome.job is not None and (outcome.job.status, outcome.job.pending) == (PENDING, ("other",))


@pytest.mark.parametrize(("condition", "runs"), [(AFTER_ANY, True), (AFTER_NOT_OK, False), (None, False)])
def test_a_dependency_gone_before_its_end_was_learnt_counts_as_ended_outcome_unknown(
    condition: str | None, runs: bool
) -> None:
    outcome = transition(waiting(condition), DependencyFailed("dep", gone=True), LATER)
    assert outcome.job is not None and outcome.job.status == (RUNNABLE if runs else FAILED)


def test_at_submit_settles_dependencies_that_already_ended() -> None:
    ok, bad, busy = a_job("ok", status=SUCCEEDED), a_job("bad", status=FAILED), a_job("busy", status=RUNNING)
    deps = (Dependency("ok", AFTER_ANY), Dependency("bad", AFTER_NOT_OK), Dependency("busy"))
    assert conditions.at_submit(deps, [ok, bad, busy]) == conditions.AtSubmit(("busy",), None)
    refused = conditions.at_submit((Dependency("ok", AFTER_NOT_OK),), [ok])
    assert refused.failure == f"{CONDITION_NOT_MET}: ok SUCCEEDED (AFTER_NOT_OK)"
    assert conditions.at_submit((Dependency("bad"),), [bad]).failure == f"{DEPENDENCY_FAILED}: bad"


@pytest.mark.parametrize(
    ("deps", "field"),
    [
        ([{"jobId": "a", "type": "AFTER_SOMETIMES"}], "dependsOn[0].type"),
        ([{"type": AFTER_ANY}], "dependsOn[0].jobId"),
        ([{"jobId": "a"}, {"jobId": "a", "type": AFTER_NOT_OK}], "dependsOn[1].type"),
    ],
)
def test_a_bad_conditional_dependency_is_refused_naming_the_field(deps: list[dict[str, str]], field: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        job_spec.validate_submit(submit(dependsOn=deps), Limits())
    assert str(e.value).startswith(field)


def test_conditional_dependencies_are_valid_for_plain_and_array_jobs() -> None:
    deps = [{"jobId": "a", "type": AFTER_ANY}, {"jobId": "b", "type": AFTER_NOT_OK}]
    job_spec.validate_submit(submit(dependsOn=deps), Limits())
    job_spec.validate_submit(submit(dependsOn=deps, arrayProperties={"size": 3}), Limits())


# -- client tokens --------------------------------------------------------------------------------------------------

TAGGED = submit(tags={idempotency.TOKEN_TAG: "run-42"})


def test_a_request_without_a_token_has_none() -> None:
    assert idempotency.token_of(submit()) is None
    assert idempotency.token_of(submit(tags={"team": "a"})) is None


def test_a_live_claim_returns_its_job_for_the_same_request_in_any_key_order() -> None:
    claim = idempotency.new_claim("run-42", "job-1", TAGGED, LATER)
    reordered = dict(reversed(list(TAGGED.items())))
    assert idempotency.claimed_job(claim, reordered, LATER + 1) == "job-1"


def test_a_claim_expires_after_a_day() -> None:
    claim = idempotency.new_claim("run-42", "job-1", TAGGED, LATER)
    assert idempotency.claimed_job(claim, TAGGED, LATER + idempotency.TOKEN_TTL_MS - 1) == "job-1"
    assert idempotency.claimed_job(claim, TAGGED, LATER + idempotency.TOKEN_TTL_MS) is None


def test_the_same_token_with_other_parameters_is_refused() -> None:
    claim = idempotency.new_claim("run-42", "job-1", TAGGED, LATER)
    with pytest.raises(InvalidRequest) as e:
        idempotency.claimed_job(claim, {**TAGGED, "jobName": "other"}, LATER)
    assert "batchplane:clientToken" in str(e.value) and "job-1" in str(e.value)


@pytest.mark.parametrize("token", ["", "x" * 65, "tab\there"])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidRequest, match="batchplane:clientToken"):
        idempotency.token_of(submit(tags={idempotency.TOKEN_TAG: token}))
