"""The Docker launcher on its own, against the real engine: idempotent launches (in one server, across servers of
one state, never across states, after the attempt's end), credentials asked of the CredentialVendor port, a container
created but never started before a crash, the removal of ended containers nothing asks about, and memory: only the
attempts in progress are held (docs/adr/0033)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from chalicelib.compute import docker_attempt
from chalicelib.compute.docker import JOURNAL, LABEL_JOB, LOST_HOST, DockerLauncher
from chalicelib.compute.docker_task import DockerTask
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.port import TaskSpec
from chalicelib.domain import ecs_task
from chalicelib.domain.jobs import TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from tests.docker_support import TEST_IMAGE

Event = TaskStarted | TaskStopped


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@dataclass
class Sink:
    """Engine.report's shape: every event is recorded at once (then `recorded` runs)."""

    events: list[tuple[str, Event]] = field(default_factory=list)

    def __call__(self, job_id: str, event: Event, recorded: Callable[[], None] | None = None) -> None:
        self.events.append((job_id, event))
        if recorded is not None:
            recorded()

    def stops(self) -> list[TaskStopped]:
        return [e for _, e in self.events if isinstance(e, TaskStopped)]


@dataclass
class Vendor:
    """A CredentialVendor (compute/port.py) that records what it was asked."""

    network: str | None
    granted: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def grant(self, spec: TaskSpec, *, container: bool) -> dict[str, str]:
        assert container
        self.granted.append(spec.key)
        return {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": f"/creds/{spec.attempt}"}

    def release(self, key: str) -> None:
        self.released.append(key)


@dataclass
class Launchers:
    client: Any
    root: Path
    made: list[DockerLauncher] = field(default_factory=list)

    def new(self, state_id: str, sink: Sink, **kwargs: Any) -> DockerLauncher:
        kwargs.setdefault("grace_seconds", 1.0)  # sleep as PID 1 ignores SIGTERM: stops take the grace period
        launcher = DockerLauncher(
            self.client, state_id, self.root / state_id, FileLogStore(self.root / state_id / "logs"), sink, **kwargs
        )
        self.made.append(launcher)
        return launcher


@pytest.fixture
def launchers(docker_engine: Any, tmp_path: Path) -> Iterator[Launchers]:
    made = Launchers(docker_engine, tmp_path)
    yield made
    for launcher in made.made:
        with contextlib.suppress(OSError):
            launcher.shutdown(1.0)
        for c in docker_engine.containers(all=True, filters={"label": f"batchplane.state-dir={launcher.state_id}"}):
            forget(docker_engine, c["Id"])


def forget(client: Any, container: str) -> None:
    """Remove a test's container; two launchers of one state dir may be removing it already (409) or have (404)."""
    try:
        client.remove_container(container, force=True)
    except docker.errors.APIError as e:
        if e.status_code not in (404, 409):
            raise


def spec(job_id: str, command: list[str], attempt: int = 1) -> TaskSpec:
    env = {"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": str(attempt)}
    return TaskSpec(
        job_id, attempt, "task", command, env, f"jd/default/{job_id}", 0.25, 512, "ce", container={"image": TEST_IMAGE}
    )


def ours(client: Any, job_id: str) -> list[dict[str, Any]]:
    return list(client.containers(all=True, filters={"label": f"{LABEL_JOB}={job_id}"}))


def sid() -> str:
    return uuid.uuid4().hex[:12]


def test_a_launch_is_idempotent_within_a_server_and_across_servers_of_one_state(launchers: Launchers) -> None:
    state, job = sid(), f"job-{sid()}"
    first_sink, second_sink = Sink(), Sink()
    first = launchers.new(state, first_sink)
    first.launch(spec(job, ["sleep", "30"]))
    first.launch(spec(job, ["sleep", "30"]))
    wait_until(lambda: len(first_sink.events) == 1, "the start")
    # a second server of the same state launching the same attempt conflicts on the container's name
    second = launchers.new(state, second_sink)
    second.launch(spec(job, ["sleep", "30"]))
    time.sleep(0.5)
    assert len(ours(launchers.client, job)) == 1
    assert second_sink.events == []
    first.stop(job, 1, "done")
    wait_until(lambda: len(first_sink.stops()) == 1, "the stop")


def test_servers_of_two_states_never_touch_each_others_containers(launchers: Launchers) -> None:
    job = f"job-{sid()}"
    a_sink, b_sink = Sink(), Sink()
    a, b = launchers.new(sid(), a_sink), launchers.new(sid(), b_sink)
    a.launch(spec(job, ["sleep", "30"]))
    wait_until(lambda: len(a_sink.events) == 1, "the start")
    assert b.recover(job, 1) is False  # b never launched it: it is b's to launch, and it gets its own container
    b.launch(spec(job, ["true"]))
    wait_until(lambda: len(b_sink.stops()) == 1, "b's run")
    assert b_sink.stops()[0].exit_code == 0
    wait_until(lambda: len(ours(launchers.client, job)) == 1, "b's container removed")
    assert [c["State"] for c in ours(launchers.client, job)] == ["running"]  # a's, untouched
    a.stop(job, 1, "done")
    wait_until(lambda: len(a_sink.stops()) == 1, "a's stop")


def test_credentials_are_granted_joined_and_released(launchers: Launchers, docker_engine: Any) -> None:
    network, job = f"batchplane-test-{sid()}", f"job-{sid()}"
    docker_engine.create_network(network, labels={"batchplane.test": "1"})
    try:
        sink, vendor = Sink(), Vendor(network)
        launcher = launchers.new(sid(), sink, credentials=vendor)
        launcher.launch(spec(job, ["sh", "-c", "echo $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; sleep 30"]))
        wait_until(lambda: len(sink.events) == 1, "the start")
        info = docker_engine.inspect_container(ours(docker_engine, job)[0]["Id"])
        assert list(info["NetworkSettings"]["Networks"]) == [network]
        assert vendor.granted == [f"{job}#1"] and vendor.released == []
        launcher.stop(job, 1, "done")
        wait_until(lambda: vendor.released == [f"{job}#1"], "the release once the end is recorded")
        assert (
            launcher.logs.read(f"jd/default/{job}", start_time=None, end_time=None, offset=0, limit=10, from_head=True)[
                0
            ][0].message
            == "/creds/1"
        )
    finally:
        for c in ours(docker_engine, job):
            forget(docker_engine, c["Id"])
        docker_engine.remove_network(network)


def test_a_container_created_but_never_started_before_a_crash_is_started_by_recovery(launchers: Launchers) -> None:
    state, job = sid(), f"job-{sid()}"
    crashed = launchers.new(state, Sink())
    s = spec(job, ["sh", "-c", "exit 4"])
    # the crash: the container exists (with its name and labels), it was never started
    from chalicelib.compute.docker_attempt import Attempt

    crashed._create(Attempt(job, 1, s.log_stream, spec=s), s)
    assert [c["State"] for c in ours(launchers.client, job)] == ["created"]
    sink = Sink()
    restarted = launchers.new(state, sink)
    assert restarted.recover(job, 1) is True
    wait_until(lambda: len(sink.stops()) == 1, "its run")
    assert sink.stops()[0].exit_code == 4
    wait_until(lambda: not ours(launchers.client, job), "its removal")
    # (created without a marker, as by an earlier version: its end, once settled, leaves one all the same)
    wait_until(lambda: not in_progress(restarted), "the attempt settled")
    restarted.launch(s)
    assert not in_progress(restarted) and not ours(launchers.client, job)


def test_a_crash_between_the_journal_and_the_create_relaunches_the_same_attempt(launchers: Launchers) -> None:
    # GIVEN a server killed right after journalling `created` for an attempt, before its container existed
    state, job = sid(), f"job-{sid()}"
    crashed = launchers.new(state, Sink())
    crashed.journal.created(f"{job}#1")
    assert not ours(launchers.client, job)
    # WHEN the restarted server recovers it
    sink = Sink()
    restarted = launchers.new(state, sink)
    # THEN it never ran: nothing is reported and the sweep may launch it again, as the same attempt
    assert restarted.recover(job, 1) is False
    assert sink.stops() == []
    restarted.launch(spec(job, ["sh", "-c", "exit 3"]))
    wait_until(lambda: len(sink.stops()) == 1, "its run")
    assert sink.stops()[0].exit_code == 3


def test_a_started_container_the_engine_lost_fails_as_a_lost_host(launchers: Launchers) -> None:
    # GIVEN an attempt journalled as started whose container is gone (the engine lost it)
    state, job = sid(), f"job-{sid()}"
    crashed = launchers.new(state, Sink())
    crashed.journal.created(f"{job}#1")
    crashed.journal.started(f"{job}#1")
    # WHEN the restarted server recovers it THEN it may have run: it fails as a lost host, to be retried
    sink = Sink()
    restarted = launchers.new(state, sink)
    assert restarted.recover(job, 1) is True
    assert [e.status_reason for e in sink.stops()] == [LOST_HOST]


def test_ended_containers_nothing_asks_about_are_reaped(launchers: Launchers) -> None:
    state, job = sid(), f"job-{sid()}"
    crashed = launchers.new(state, Sink())
    s = spec(job, ["true"])
    from chalicelib.compute.docker_attempt import Attempt

    a = Attempt(job, 1, s.log_stream, spec=s)
    crashed._create(a, s)
    launchers.client.start(a.container)
    launchers.client.wait(a.container)
    restarted = launchers.new(state, Sink())
    assert restarted.reap() == 1
    assert ours(launchers.client, job) == []


def test_what_the_log_follow_missed_is_appended_once_before_the_end_is_reported(
    launchers: Launchers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a log follow that ends early (as dockerd's can before its logger wrote a last line without a newline),
    # on output whose lines share milliseconds and texts
    from chalicelib.compute import docker_engine

    follow = docker_engine.log_frames

    def ends_early(*args: Any) -> Iterator[bytes]:
        for n, frame in enumerate(follow(*args)):
            if n == 3:
                return
            yield frame

    monkeypatch.setattr(docker_engine, "log_frames", ends_early)
    sink, job = Sink(), f"job-{sid()}"
    launcher = launchers.new(sid(), sink)
    # WHEN the container ends
    launcher.launch(spec(job, ["sh", "-c", "for i in $(seq 1 200); do echo same; done; printf end"]))
    wait_until(lambda: len(sink.stops()) == 1, "its end")
    # THEN by the time its end is reported, its log holds every line exactly once
    events, _, _ = launcher.logs.read(
        f"jd/default/{job}", start_time=None, end_time=None, offset=0, limit=1000, from_head=True
    )
    assert [e.message for e in events] == ["same"] * 200 + ["end"]


class EngineDropsWaits(docker.APIClient):  # type: ignore[misc]
    """The real client, whose first `failures` waits fail as when dockerd restarts or its socket drops: requests'
    ConnectionError, not a DockerException. The container runs on the real engine all along."""

    def __init__(self, failures: int, *, loses: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures, self.loses, self.waits = failures, loses, 0

    def wait(self, container: str, *args: Any, **kwargs: Any) -> Any:
        self.waits += 1
        if self.waits <= self.failures:
            if self.loses:  # the engine came back without the container
                super().remove_container(container, force=True)
            raise requests.exceptions.ConnectionError("engine unreachable (its socket dropped)")
        return super().wait(container, *args, **kwargs)


def test_an_engine_that_drops_the_wait_does_not_lose_the_end(
    launchers: Launchers, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_attempt, "WAIT_BACKOFF_S", (0.05, 0.2))
    client = EngineDropsWaits(3, **docker.utils.kwargs_from_env(), timeout=60)
    sink, state, job = Sink(), sid(), f"job-{sid()}"
    launcher = DockerLauncher(client, state, launchers.root / state, FileLogStore(launchers.root / "logs"), sink)
    launchers.made.append(launcher)
    launcher.launch(spec(job, ["sh", "-c", "sleep 0.5; exit 7"]))
    wait_until(lambda: len(sink.stops()) == 1, "the end")
    assert client.waits == 4  # three dropped waits, then the real one
    [stopped] = sink.stops()
    assert (stopped.exit_code, stopped.status_reason) == (7, None)
    wait_until(lambda: not ours(docker_engine, job), "the ended container's removal")
    time.sleep(0.3)
    assert len(sink.stops()) == 1  # reported once


def test_a_container_an_engine_lost_while_unreachable_fails_as_a_lost_host(
    launchers: Launchers, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_attempt, "WAIT_BACKOFF_S", (0.05, 0.2))
    client = EngineDropsWaits(1, loses=True, **docker.utils.kwargs_from_env(), timeout=60)
    sink, state, job = Sink(), sid(), f"job-{sid()}"
    launcher = DockerLauncher(client, state, launchers.root / state, FileLogStore(launchers.root / "logs"), sink)
    launchers.made.append(launcher)
    launcher.launch(spec(job, ["sleep", "1"]))
    wait_until(lambda: len(sink.stops()) == 1, "the end")
    [stopped] = sink.stops()
    assert (stopped.exit_code, stopped.status_reason) == (None, LOST_HOST)
    assert client.waits == 2  # the dropped one, then the one that found it gone


# -- memory: only the attempts in progress are held; the markers keep ended ones from running again (ADR 0033) --------


@dataclass
class HeldSink(Sink):
    """A sink whose `recorded` callbacks wait until the test runs them: an end reported, not yet recorded."""

    held: list[Callable[[], None]] = field(default_factory=list)

    def __call__(self, job_id: str, event: Event, recorded: Callable[[], None] | None = None) -> None:
        self.events.append((job_id, event))
        if recorded is not None:
            self.held.append(recorded)

    def record(self) -> None:
        held, self.held = self.held, []
        for recorded in held:
            recorded()


def in_progress(launcher: DockerLauncher) -> set[str]:
    return launcher.in_progress()


def task_spec(job_id: str, script: str) -> TaskSpec:
    """A multi-container attempt (docs/adr/0028): `main` runs the script, a non-essential sidecar sleeps."""
    props = {
        "taskProperties": [
            {
                "containers": [
                    {"name": "main", "image": TEST_IMAGE, "command": ["sh", "-c", script]},
                    {"name": "side", "image": TEST_IMAGE, "command": ["sleep", "600"], "essential": False},
                ]
            }
        ]
    }
    containers = ecs_task.task_containers(props, {}, {}, f"jd/default/{job_id}")
    return dataclasses.replace(spec(job_id, []), containers=containers)


def printed(launcher: DockerLauncher, stream: str) -> list[str]:
    events, _, _ = launcher.logs.read(stream, start_time=None, end_time=None, offset=0, limit=100, from_head=True)
    return [e.message for e in events]


def test_ended_attempts_leave_nothing_in_memory_and_never_run_again(launchers: Launchers) -> None:
    # GIVEN a server that ran attempts to their ends: exits, a failure to start (an image no registry has), and a
    # multi-container task
    sink, state = Sink(), sid()
    launcher = launchers.new(state, sink)
    specs = [spec(f"job-{sid()}", ["sh", "-c", "echo ran"]) for _ in range(8)]
    unpullable = dataclasses.replace(
        spec(f"job-{sid()}", ["true"]), container={"image": "batchplane-test-missing.invalid/none:1"}
    )
    task = task_spec(f"job-{sid()}", "echo ran")
    for s in [*specs, unpullable, task]:
        launcher.launch(s)
    wait_until(lambda: len(sink.stops()) == len(specs) + 2, "every end", timeout=60)
    # THEN once their ends are recorded and their containers removed, the server holds none of them
    wait_until(lambda: not in_progress(launcher), "nothing held once every end is recorded")
    assert all(not ours(launchers.client, s.job_id) for s in [*specs, unpullable, task])
    assert [e.status_reason for e in sink.stops() if e.attempt == 1 and e.exit_code is None] == ["Task failed to start"]
    # WHEN each attempt is launched again, by this server and by another server of the state
    again = launchers.new(state, sink)
    for s in [*specs, unpullable, task]:
        launcher.launch(s)
        again.launch(s)
    # THEN nothing is created or watched (the launches were refused before any watcher existed), nothing runs
    assert not in_progress(launcher) and not in_progress(again)
    assert all(not ours(launchers.client, s.job_id) for s in [*specs, unpullable, task])
    assert len(sink.events) == 2 * len(specs) + 1 + 2  # (started and stopped; the failure; the task's two)
    assert all(printed(launcher, s.log_stream) == ["ran"] for s in specs)
    assert printed(launcher, task.containers[0].log_stream) == ["ran"]


def test_an_attempt_stays_in_progress_until_its_end_is_recorded_then_removed(launchers: Launchers) -> None:
    # GIVEN an attempt that ended, whose end is reported but not yet recorded
    sink, state, job = HeldSink(), sid(), f"job-{sid()}"
    launcher = launchers.new(state, sink)
    s = spec(job, ["sh", "-c", "exit 5"])
    launcher.launch(s)
    wait_until(lambda: len(sink.stops()) == 1, "its end")
    # THEN it is still in progress: the reap leaves its ended container, a recovery reports nothing, a launch is
    # ignored
    assert [c["State"] for c in ours(launchers.client, job)] == ["exited"]
    assert launcher.reap() == 0 and len(ours(launchers.client, job)) == 1
    assert launcher.recover(job, 1) is True
    launcher.launch(s)
    assert len(sink.events) == 2 and in_progress(launcher) == {f"{job}#1"}
    # WHEN its end is recorded THEN its container is removed, and only then does it leave the set
    sink.record()
    wait_until(lambda: not in_progress(launcher), "the attempt settled")
    assert not ours(launchers.client, job)
    assert launcher.reap() == 0


def test_a_recovery_after_the_end_never_launches_the_attempt_again(launchers: Launchers) -> None:
    # GIVEN attempts this server ran to their end (an exit, and a failure to start), no longer held in memory
    sink, state = Sink(), sid()
    launcher = launchers.new(state, sink)
    ran = spec(f"job-{sid()}", ["sh", "-c", "echo ran"])
    failed = dataclasses.replace(spec(f"job-{sid()}", ["true"]), container={"image": "batchplane-test-missing:1"})
    launcher.launch(ran)
    launcher.launch(failed)
    wait_until(lambda: len(sink.stops()) == 2 and not in_progress(launcher), "both settled", timeout=60)
    # WHEN a sweep that read the jobs before their ends were recorded asks about them (here or after a restart)
    restarted = launchers.new(state, sink)
    for server in (launcher, restarted):
        # THEN they count as started (True: the sweep does not launch them again); the lost host reported is stale
        # for the lifecycle (their attempts have ended)
        assert server.recover(ran.job_id, 1) is True
        assert server.recover(failed.job_id, 1) is True
        assert not in_progress(server)
    assert [e.status_reason for e in sink.stops()[2:]] == [LOST_HOST] * 4
    assert not ours(launchers.client, ran.job_id) and not ours(launchers.client, failed.job_id)
    assert printed(launcher, ran.log_stream) == ["ran"]


def test_a_crash_between_the_launch_and_the_create_relaunches_the_same_attempt(launchers: Launchers) -> None:
    # GIVEN a server killed after marking an attempt launched (and journalling `created`), before its container
    state, job = sid(), f"job-{sid()}"
    crashed = launchers.new(state, Sink())
    assert crashed.journal.launching(f"{job}#1")
    crashed.journal.created(f"{job}#1")
    # WHEN the restarted server recovers it THEN it never ran: False, and the sweep's launch runs it, once
    sink = Sink()
    restarted = launchers.new(state, sink)
    assert restarted.recover(job, 1) is False
    restarted.launch(spec(job, ["sh", "-c", "exit 3"]))
    wait_until(lambda: len(sink.stops()) == 1 and not in_progress(restarted), "its run")
    assert sink.stops()[0].exit_code == 3
    restarted.launch(spec(job, ["sh", "-c", "exit 3"]))
    assert restarted.recover(job, 1) is True
    assert [e.exit_code for e in sink.stops()] == [3, None]  # (then the stale lost host)


def test_attempts_journalled_by_a_version_without_markers_are_recovered_from_their_lines(
    launchers: Launchers,
) -> None:
    # GIVEN the journal of a version without markers: one attempt started, one only created (its container gone)
    state = sid()
    root = launchers.root / state
    root.mkdir(parents=True)
    started, created = f"job-{sid()}#1", f"job-{sid()}#1"
    (root / JOURNAL).write_text(f"created {started}\nstarted {started}\ncreated {created}\n")
    # WHEN this version recovers them (after its own attempts began: they are never read as an earlier version's)
    sink = Sink()
    launcher = launchers.new(state, sink)
    launcher.launch(spec(f"job-{sid()}", ["true"]))
    # THEN the started one may have run (a lost host), the other never ran (launched again)
    assert launcher.recover(started.split("#")[0], 1) is True
    assert launcher.recover(created.split("#")[0], 1) is False
    assert LOST_HOST in [e.status_reason for e in sink.stops()]
    assert launcher.journal._legacy == {started}  # (the lines of this version's attempts are not read)


def test_an_attempt_stopped_before_its_container_started_never_runs_after_a_crash(launchers: Launchers) -> None:
    # GIVEN a server killed after a stop was asked of attempts it had launched, not started: one whose container
    # did not exist yet, one whose container was created, a multi-container task whose network holder was made
    state, none, created, task = sid(), f"job-{sid()}", f"job-{sid()}", f"job-{sid()}"
    crashed = launchers.new(state, Sink())
    s = spec(created, ["sh", "-c", "exit 4"])
    for key in (f"{none}#1", f"{created}#1", f"{task}#1"):
        assert crashed.journal.launching(key)
        crashed.journal.record_stop(key, "stopped by the test" if key != f"{none}#1" else TIMEOUT_REASON)
    from chalicelib.compute.docker_attempt import Attempt

    crashed._create(Attempt(created, 1, s.log_stream, spec=s), s)
    group = task_spec(task, "exit 4")
    held = DockerTask(crashed, group)
    crashed.journal.started(group.key)  # (a task's marker is STARTED before its holder is made: the stop stays)
    assert held.setup() is None
    # WHEN the restarted server recovers them
    sink = Sink()
    restarted = launchers.new(state, sink)
    assert [restarted.recover(j, 1) for j in (none, created, task)] == [True, True, True]
    # THEN as live, none of them runs: each ends with the stop's reason and no exit code, its containers removed,
    # and is never launched again
    wait_until(lambda: len(sink.stops()) == 3, "their ends")
    ends = {job: (e.exit_code, e.status_reason, e.timed_out) for job, e in sink.events if isinstance(e, TaskStopped)}
    assert ends == {
        none: (None, TIMEOUT_REASON, True),
        created: (None, "stopped by the test", False),
        task: (None, "stopped by the test", False),
    }
    assert not [e for _, e in sink.events if isinstance(e, TaskStarted)]
    assert [c.get("reason") for c in next(e for j, e in sink.events if j == task).containers or ()] == [
        "Task stopped before the container started"
    ] * 2
    wait_until(lambda: not in_progress(restarted), "settled")
    assert all(not ours(launchers.client, j) for j in (none, created, task))
    restarted.launch(s)
    assert restarted.recover(none, 1) is True and not ours(launchers.client, created)
