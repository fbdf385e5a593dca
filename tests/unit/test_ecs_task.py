"""The rules of a multi-container task (domain/ecs_task.py): which containers may start, which never will, which
essential container ends the task, and the job's exit (docs/adr/0028)."""

from __future__ import annotations

from chalicelib.domain import ecs_task
from chalicelib.domain.ecs_task import EXITED, NEVER, RUNNING, WAITING, State, TaskContainer


def tc(name: str, *deps: tuple[str, str], essential: bool = True) -> TaskContainer:
    return TaskContainer(name, essential, tuple(deps), ["true"], {}, f"jd/{name}/t", 0.5, 256)


INIT = tc("init", essential=False)
SIDE = tc("side", essential=False)
MAIN = tc("main", ("init", "SUCCESS"), ("side", "START"))
TASK = (INIT, SIDE, MAIN)


def states(**given: State) -> dict[str, State]:
    return {c.name: given.get(c.name, State()) for c in TASK}


def test_containers_without_dependencies_start_first() -> None:
    assert ecs_task.startable(TASK, states()) == ["init", "side"]


def test_a_container_starts_once_every_condition_holds() -> None:
    # GIVEN side started but init still runs: main waits (SUCCESS needs init's exit 0)
    running = states(init=State(RUNNING), side=State(RUNNING))
    assert ecs_task.startable(TASK, running) == []
    # WHEN init exits 0 THEN main may start
    assert ecs_task.startable(TASK, {**running, "init": State(EXITED, 0)}) == ["main"]


def test_complete_accepts_any_exit_but_success_only_zero() -> None:
    after = tc("after", ("init", "COMPLETE"))
    task = (INIT, after)
    failed = {"init": State(EXITED, 2), "after": State()}
    assert ecs_task.startable(task, failed) == ["after"]
    assert ecs_task.startable(TASK, {**states(side=State(RUNNING)), "init": State(EXITED, 2)}) == []


def test_a_failed_success_dependency_rules_the_container_out() -> None:
    given = states(init=State(EXITED, 1), side=State(RUNNING))
    never = ecs_task.never_startable(TASK, given)
    assert list(never) == ["main"] and never["main"].startswith("DependencyViolation: container init exited with 1")


def test_a_dependency_that_never_started_rules_its_dependents_out() -> None:
    given = states(init=State(EXITED, 0), side=State(NEVER, reason="CannotStartContainerError"))
    assert "never started" in ecs_task.never_startable(TASK, given)["main"]


def test_only_an_essential_container_ends_the_task() -> None:
    assert ecs_task.ending(TASK, states(init=State(EXITED, 1), side=State(EXITED, 0))) is None
    assert ecs_task.ending(TASK, states(main=State(EXITED, 0))) == "main"
    assert ecs_task.ending(TASK, states(main=State(NEVER))) == "main"


def test_the_job_exit_is_the_ending_essential_containers() -> None:
    ended = states(init=State(EXITED, 0), side=State(EXITED, 143), main=State(EXITED, 3, "boom"))
    assert ecs_task.job_exit(TASK, ended, "main") == (3, "boom")
    # a non-essential container's failure does not count
    ok = {**ended, "main": State(EXITED, 0)}
    assert ecs_task.job_exit(TASK, ok, "main") == (0, None)


def test_results_list_every_container_in_definition_order() -> None:
    ended = states(init=State(EXITED, 0), side=State(EXITED, 143), main=State(NEVER, reason="r" * 300))
    results = ecs_task.results(TASK, ended)
    assert [r["name"] for r in results] == ["init", "side", "main"]
    assert results[1] == {"name": "side", "exitCode": 143}
    assert "exitCode" not in results[2] and len(results[2]["reason"]) == 255


def test_all_done() -> None:
    assert not ecs_task.all_done(states(init=State(EXITED, 0)))
    assert ecs_task.all_done({n: State(EXITED, 0) for n in ("a", "b")} | {"c": State(NEVER)})
    assert State().status == WAITING


def test_log_streams_name_the_container() -> None:
    assert ecs_task.log_stream("myjd/default/abc123", "side") == "myjd/side/abc123"


def test_overrides_merge_by_name_and_type() -> None:
    ecs = {
        "taskProperties": [
            {
                "containers": [
                    {"image": "i", "environment": [{"name": "A", "value": "1"}]},
                ]
            }
        ]
    }
    override = {"taskProperties": [{"containers": [{"environment": [{"name": "A", "value": "2"}]}]}]}
    effective = ecs_task.effective_properties(ecs, override)
    (only,) = effective["taskProperties"][0]["containers"]
    assert only["name"] == "default" and only["environment"] == [{"name": "A", "value": "2"}]
    assert ecs["taskProperties"][0]["containers"][0]["environment"] == [{"name": "A", "value": "1"}]  # untouched


def test_task_resources_are_the_sum() -> None:
    cs = [
        {"resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "512"}]},
        {"resourceRequirements": [{"type": "VCPU", "value": "1"}]},
    ]
    assert ecs_task.task_resources(cs) == (1.5, 512)
    assert ecs_task.task_resources([{}]) == (1.0, 2048)


def test_task_containers_substitute_parameters_and_keep_reserved_variables() -> None:
    ecs = {
        "taskProperties": [
            {
                "volumes": [{"name": "v"}],
                "containers": [
                    {
                        "name": "a",
                        "image": "i",
                        "command": ["echo", "Ref::x"],
                        "environment": [{"name": "AWS_BATCH_JOB_ID", "value": "spoof"}],
                    }
                ],
            }
        ]
    }
    (a,) = ecs_task.task_containers(ecs, {"AWS_BATCH_JOB_ID": "real"}, {"x": "42"}, "jd/default/t1")
    assert a.command == ["echo", "42"] and a.environment["AWS_BATCH_JOB_ID"] == "real"
    assert a.log_stream == "jd/a/t1" and a.container["volumes"] == [{"name": "v"}] and a.essential


ECS = {
    "taskProperties": [
        {
            "containers": [
                {"name": "side", "image": "i", "essential": False},
                {"name": "a", "image": "i"},
                {"name": "b", "image": "i"},
            ]
        }
    ]
}


def test_a_stopped_ecs_task_exits_as_the_essential_container_that_exited_by_itself() -> None:
    # b exited 0 by itself; a was stopped by ECS (143); the sidecar's failure does not count
    ends = [{"name": "side", "exitCode": 1}, {"name": "a", "exitCode": 143}, {"name": "b", "exitCode": 0}]
    assert ecs_task.exit_of_stopped_task(ECS, ends) == (0, None)
    # a failed by itself: the job fails with its code
    ends = [{"name": "a", "exitCode": 2, "reason": "x"}, {"name": "b", "exitCode": 143}]
    assert ecs_task.exit_of_stopped_task(ECS, ends) == (2, "x")
    # nothing exited (the task failed to start): the first essential container's reason
    assert ecs_task.exit_of_stopped_task(ECS, [{"name": "a", "reason": "CannotPull"}]) == (None, "CannotPull")


def test_the_lifecycle_decides_the_exit_of_an_ecs_task_from_its_containers() -> None:
    import dataclasses

    from chalicelib.domain import lifecycle
    from chalicelib.domain.jobs import FAILED, RUNNING
    from tests.unit.builders import a_job, an_attempt

    job = a_job(status=RUNNING, current=an_attempt(1), ecs_properties=ECS)
    ends = ({"name": "side", "exitCode": 0}, {"name": "a", "exitCode": 5}, {"name": "b", "exitCode": 143})
    stop = lifecycle.TaskStopped(1, None, status_reason="Essential container in task exited", containers=ends)
    outcome = lifecycle.transition(job, dataclasses.replace(stop, decide_exit=True), 10)
    assert outcome.job is not None and outcome.job.status == FAILED
    assert outcome.job.attempts[-1].exit_code == 5 and outcome.job.attempts[-1].containers == ends
    # a single-container job keeps the exit it was given and stores no containers
    plain = a_job(status=RUNNING, current=an_attempt(1))
    kept = lifecycle.transition(plain, dataclasses.replace(stop, exit_code=0, decide_exit=True), 10)
    assert kept.job is not None and kept.job.attempts[-1].exit_code == 0 and kept.job.attempts[-1].containers == ()


def test_ecs_events_report_every_container_of_a_multi_container_task() -> None:
    from chalicelib.compute import ecs_events

    task = {
        "group": "batchplane:job-1:1",
        "lastStatus": "STOPPED",
        "taskArn": "arn:aws:ecs:us-east-1:1:task/c/abc",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"name": "side", "exitCode": 143}, {"name": "main", "exitCode": 3, "reason": "r"}],
    }
    event = ecs_events.task_state(task)
    assert event is not None and isinstance(event.event, lifecycle_stopped())
    assert event.event.decide_exit and event.event.containers == (
        {"name": "side", "exitCode": 143},
        {"name": "main", "exitCode": 3, "reason": "r"},
    )


def lifecycle_stopped() -> type:
    from chalicelib.domain.lifecycle import TaskStopped

    return TaskStopped
