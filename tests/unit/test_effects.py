"""`effects_of(old, new)`, the one rule for what a committed job change carries (docs/adr/0023), agrees with what
the state machine lists for each step, over the random event sequences of tests/unit/test_lifecycle.py."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings

from chalicelib.domain.effects import CARRIED, COMMANDS, CreateChildren, Effect, effects_of, in_order
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import CancelChildren, Event, Launch, Publish, StopTask, WakeDispatcher, transition
from tests.unit.builders import a_job
from tests.unit.test_lifecycle import LATER, scenarios


def _carried(effects: tuple[Effect, ...]) -> Counter[Effect]:
    return Counter(e for e in effects if type(e) in CARRIED)


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_step_carries_what_the_state_machine_decided(scenario: tuple[Job, list[Event]]) -> None:
    job, events = scenario
    for step, event in enumerate(events):
        # WHEN a step changes the job
        outcome = transition(job, event, LATER + step)
        if outcome.job is None:
            assert all(type(e) in COMMANDS for e in outcome.effects), (event, outcome.effects)  # nothing to carry
            continue
        decided, derived = _carried(outcome.effects), _carried(effects_of(job, outcome.job))

        # THEN the change carries exactly the effects the state machine listed, but for the two documented cases
        parent = outcome.job.array if outcome.job.is_array_parent else None
        if parent is not None and parent.size is not None and parent.children_created < parent.size:
            decided[CreateChildren()] = derived[CreateChildren()]  # re-derived while children are left: resumable
        if parent is not None and parent.children_created == 0:
            for effect in [e for e in decided if isinstance(e, CancelChildren)]:
                del decided[effect]  # a parent that created no child has none to cancel
        assert derived == decided, (job.status, event, outcome.job.status)
        job = outcome.job


def test_a_step_runs_its_state_change_before_its_command() -> None:
    # (a launched task must not report RUNNING before its STARTING is published)
    assert in_order((Publish(),), (Launch(1),)) == (Publish(), Launch(1))
    assert in_order((), (StopTask(1, "why"),)) == (StopTask(1, "why"),)


def test_an_insert_carries_its_first_state_and_a_deletion_nothing() -> None:
    assert effects_of(None, a_job(status="RUNNABLE")) == (Publish(), WakeDispatcher())
    assert effects_of(a_job(status="SUCCEEDED"), None) == ()
