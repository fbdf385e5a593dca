"""The local launcher: a task that ends at once reports its start and its stop together; each attempt launches once,
across restarts too; recovery finds what the journal (or an earlier version's files) recorded."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.compute import task_group
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.port import TaskSpec
from chalicelib.compute.spawn import spawn
from chalicelib.domain.ecs_task import TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@dataclass
class Local:
    launcher: LocalLauncher
    events: list[tuple[str, TaskStarted | TaskStopped]]
    root: Path

    def spec(self, job_id: str = "job-1", command: list[str] | None = None, attempt: int = 1) -> TaskSpec:
        env = {"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": str(attempt)}
        return TaskSpec(job_id, attempt, "task", command or ["true"], env, "jd/default/task", 1.0, 2048, "ce")

    def wait_events(self, n: int) -> list[tuple[str, TaskStarted | TaskStopped]]:
        wait_until(lambda: len(self.events) >= n, f"{n} task events")
        return self.events


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    events: list[tuple[str, TaskStarted | TaskStopped]] = []
    launcher = LocalLauncher(tmp_path / "work", FileLogStore(tmp_path / "logs"), lambda j, e: events.append((j, e)))
    yield Local(launcher, events, tmp_path / "work")
    launcher.shutdown()


def test_a_task_that_ends_at_once_reports_its_start_then_its_stop(local: Local) -> None:
    spec = local.spec()
    local.launcher.launch(spec)

    # reported with the ECS-shaped ARNs AWS shows: the task's and this host's as the container instance
    ecs = {"task_arn": spec.local_task_arn, "container_instance_arn": spec.local_container_instance_arn}
    assert spec.local_task_arn.startswith("arn:aws:ecs:") and spec.local_task_arn.endswith(f"/{spec.task_id}")
    assert local.wait_events(2) == [("job-1", TaskStarted(1, **ecs)), ("job-1", TaskStopped(1, 0, **ecs))]
    assert (local.root / "job-1" / "1").is_dir()
    journal = (local.root / "journal").read_text().splitlines()  # the exit may come before the pid
    assert sorted(line.rsplit(" ", 1)[0] for line in journal) == ["arn job-1#1", "exit job-1#1", "pid job-1#1"]
    assert "exit job-1#1 0" in journal
    assert f"arn job-1#1 {spec.local_task_arn}" in journal  # (in the pid's write: the line after it)


def test_a_relative_work_root_still_records_the_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    events: list[tuple[str, TaskStarted | TaskStopped]] = []
    launcher = LocalLauncher(Path("work"), FileLogStore(Path("logs")), lambda j, e: events.append((j, e)))
    try:
        launcher.launch(Local(launcher, events, Path("work")).spec())
        wait_until(lambda: len(events) == 2, "the task's start and stop")
        assert "exit job-1#1 0" in (tmp_path / "work" / "journal").read_text().splitlines()
    finally:
        launcher.shutdown()


def test_an_attempt_is_launched_once_across_restarts(local: Local, tmp_path: Path) -> None:
    local.launcher.launch(local.spec())
    local.wait_events(2)
    events: list[tuple[str, TaskStarted | TaskStopped]] = []
    restarted = LocalLauncher(local.root, FileLogStore(tmp_path / "logs"), lambda j, e: events.append((j, e)))
    try:
        restarted.launch(local.spec())  # its work dir exists: started by the earlier server
        time.sleep(0.1)
        assert events == []
        assert "job-1#1" in (local.root / "journal").read_text() and len(local.wait_events(2)) == 2

        assert restarted.recover("job-1", 1) is True  # it exited 0 while nobody watched: reported now
        # as the live launcher reported it (the events a crash kept from being applied): its task's ARNs, its start
        assert events == local.events
        assert restarted.recover("job-1", 2) is False  # never launched
    finally:
        restarted.shutdown()


def sleeper(**env: str) -> subprocess.Popen[bytes]:
    """A process of this test (its own session, as the launcher's are), to be found and killed by recover()."""
    return subprocess.Popen(["sleep", "30"], env={**os.environ, **env}, start_new_session=True)


def test_recover_kills_an_attempt_whose_pid_was_never_recorded(local: Local) -> None:
    job_id = f"lost-{uuid.uuid4()}"
    (local.root / job_id / "1").mkdir(parents=True)  # a crash between creating the work dir and recording the pid
    process = sleeper(AWS_BATCH_JOB_ID=job_id, AWS_BATCH_JOB_ATTEMPT="1")
    try:  # (a process just exec'd shows its environment a moment later)
        environ = Path(f"/proc/{process.pid}/environ")
        wait_until(lambda: f"AWS_BATCH_JOB_ID={job_id}".encode() in environ.read_bytes(), "the process to run")
        assert local.launcher.recover(job_id, 1) is True  # it counts as started, and its process is found
        assert process.wait(timeout=5) == -signal.SIGKILL
        assert local.events == []
    finally:
        process.kill()
        process.wait()


def test_recover_reads_the_pid_and_exit_files_of_an_earlier_version(local: Local) -> None:
    done, running = local.root / "old-1" / "1", local.root / "old-2" / "1"
    done.mkdir(parents=True)
    running.mkdir(parents=True)
    (done / "exit").write_text("0\n")
    process = sleeper()
    try:
        (running / "pid").write_text(str(process.pid))

        assert local.launcher.recover("old-1", 1) is True
        assert local.launcher.recover("old-2", 1) is True
        assert process.wait(timeout=5) == -signal.SIGKILL
        assert local.events == [("old-1", TaskStopped(1, 0))]
    finally:
        process.kill()
        process.wait()


def test_a_program_that_is_not_on_the_path_fails_to_start(local: Local) -> None:
    local.launcher.launch(local.spec("job-3", ["no-such-program-batchplane"]))
    ok = local.spec("job-4", ["true"])
    local.launcher.launch(ok)
    ecs = {"task_arn": ok.local_task_arn, "container_instance_arn": ok.local_container_instance_arn}

    events = local.wait_events(3)
    stopped = next(e for j, e in events if j == "job-3")
    assert isinstance(stopped, TaskStopped) and stopped.exit_code is None
    assert stopped.reason == "CannotStartContainerError: No such file or directory: no-such-program-batchplane"
    assert [e for j, e in local.wait_events(3) if j == "job-4"] == [TaskStarted(1, **ecs), TaskStopped(1, 0, **ecs)]


def slow_launcher(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[tuple[str, TaskStarted | TaskStopped]],
    supervisor: Callable[[str], str] | None = None,
) -> LocalLauncher:
    """A launcher whose supervisor runs a busy loop of builtins (no child) between its trap and the command (a wide
    window for a stop to fall in), or is `supervisor(SUPERVISOR)`, with a grace period longer than any test."""
    from chalicelib.compute import local_supervisor  # where spawn_supervised reads it

    trap = "trap : HUP INT TERM; "
    cut = local_supervisor.SUPERVISOR.index(trap) + len(trap)
    slow = local_supervisor.SUPERVISOR[:cut] + "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; "
    changed = supervisor(local_supervisor.SUPERVISOR) if supervisor else slow + local_supervisor.SUPERVISOR[cut:]
    assert changed != local_supervisor.SUPERVISOR
    monkeypatch.setattr(local_supervisor, "SUPERVISOR", changed)
    # The busy loop is CPU-bound: on a starved CI machine it outlasted the 5 s the launcher waits for the fork.
    monkeypatch.setattr(local_supervisor, "COMMAND_WAIT_S", 60.0)
    logs = FileLogStore(tmp_path / "logs")
    return LocalLauncher(tmp_path / "work", logs, lambda j, e: events.append((j, e)), grace_seconds=600)


def test_a_stop_before_the_command_is_forked_still_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The supervisor's trap defers a SIGTERM that comes before it has forked the command (a node stopped right
    # after it was launched, because its main node ended at once): that stop was lost, and the command ran until
    # the SIGKILL of the grace period. A busy loop of builtins (no child) between the trap and the command makes
    # that window wide, so the stop below always falls in it.
    events: list[tuple[str, TaskStarted | TaskStopped]] = []
    launcher = slow_launcher(tmp_path, monkeypatch, events)
    try:
        launcher.launch(Local(launcher, events, tmp_path / "work").spec(command=["sleep", "600"]))
        launcher.stop("job-1", 1, "enough")
        wait_until(lambda: any(isinstance(e, TaskStopped) for _, e in events), "the stopped task to end", 60.0)
        stopped = next(e for _, e in events if isinstance(e, TaskStopped))
        assert (stopped.exit_code, stopped.status_reason) == (128 + signal.SIGTERM, "enough")
    finally:
        launcher.shutdown()


def test_a_stop_after_the_command_is_forked_but_before_it_is_execed_still_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dash vforks the command and unblocks signals in the child before its execve, the trap's handler still installed
    # there: a SIGTERM in that stretch ran the handler in the child and was gone, and the command then ran until the
    # SIGKILL of the grace period (the launcher sent the stop as soon as the supervisor had a child). Here that child
    # is a subshell with the same trap that runs builtins until the test releases it, then execs the command.
    held = '(trap : HUP INT TERM; until [ -e release ]; do :; done; exec "$@")'
    events: list[tuple[str, TaskStarted | TaskStopped]] = []
    launcher = slow_launcher(tmp_path, monkeypatch, events, lambda sup: sup.replace('"$@"', held, 1))
    try:
        launcher.launch(Local(launcher, events, tmp_path / "work").spec(command=["sleep", "600"]))
        launcher.stop("job-1", 1, "enough")
        journal = tmp_path / "work" / "journal"
        wait_until(lambda: "pid job-1#1 " in journal.read_text(), "the supervisor to run")
        pid = int(journal.read_text().split("pid job-1#1 ")[1].split()[0])
        forked = Path(f"/proc/{pid}/task/{pid}/children")
        wait_until(lambda: bool(forked.read_text().split()), "the supervisor to fork")
        time.sleep(0.3)  # a watcher that took the forked child for the command has sent the stop by now
        (tmp_path / "work" / "job-1" / "1" / "release").touch()
        wait_until(lambda: any(isinstance(e, TaskStopped) for _, e in events), "the stopped task to end", 60.0)
        stopped = next(e for _, e in events if isinstance(e, TaskStopped))
        assert (stopped.exit_code, stopped.status_reason) == (128 + signal.SIGTERM, "enough")
    finally:
        launcher.shutdown()


def test_a_job_process_starts_clean_whatever_the_server_holds(local: Local, tmp_path: Path) -> None:
    # A job starts as in a fresh container: in its work dir, with stdin, stdout and stderr only (no descriptor of
    # the server: its database, journal, sockets, or one it inherited from its own parent), SIGPIPE at its default
    # (Python ignores it in the server), no signal blocked, and its own variables untouched by the supervisor's.
    leaked = open(tmp_path / "server-file", "w")  # noqa: SIM115 - held open across the launch on purpose
    os.set_inheritable(leaked.fileno(), True)  # as a descriptor the server inherited would be
    mine = {"OLDPWD": "/mine", "j": "J", "k": "K", "c": "C", "AWS_BATCH_JOB_ID": "job-2", "AWS_BATCH_JOB_ATTEMPT": "1"}
    try:
        script = 'pwd; ls /proc/self/fd; grep -E "^(SigIgn|SigBlk)" /proc/self/status; echo "OLDPWD=${OLDPWD-unset}"'
        spec = local.spec(command=["sh", "-c", script])
        local.launcher.launch(spec)
        # a job's own variables named like the supervisor's pass through untouched
        script = 'echo "OLDPWD=$OLDPWD j=$j k=$k c=$c"; env | grep -c "^__bp_" || true'
        own = dataclasses.replace(local.spec("job-2", ["sh", "-c", script]), environment=mine, log_stream="jd/own/task")
        local.launcher.launch(own)
        wait_until(lambda: sum(isinstance(e, TaskStopped) for _, e in local.events) == 2, "the tasks' ends")
    finally:
        leaked.close()
    assert [e.exit_code for _, e in local.events if isinstance(e, TaskStopped)] == [0, 0]
    read = local.launcher.logs.read
    events, _, _ = read(spec.log_stream, start_time=None, end_time=None, offset=0, limit=100, from_head=True)
    lines = [e.message for e in events]
    assert lines[0] == str((local.root / "job-1" / "1").resolve())
    fds = sorted(int(x) for x in lines[1:] if x.isdigit())
    assert fds == [0, 1, 2, 3]  # 3: the directory `ls` reads
    ignored = next(x for x in lines if x.startswith("SigIgn")).split()[1]
    assert int(ignored, 16) & (1 << (signal.SIGPIPE - 1)) == 0, "SIGPIPE is at its default in the job"
    assert int(next(x for x in lines if x.startswith("SigBlk")).split()[1], 16) == 0, "no signal is blocked"
    assert "OLDPWD=unset" in lines
    events, _, _ = read(own.log_stream, start_time=None, end_time=None, offset=0, limit=100, from_head=True)
    assert [e.message for e in events] == ["OLDPWD=/mine j=J k=K c=C", "0"]


# -- multi-container attempts (docs/adr/0028): each member under the supervisor, keyed <jobId>#<attempt>/<name> --


def task(job_id: str, *members: tuple[str, bool, list[str]]) -> TaskSpec:
    """A multi-container attempt: (name, essential, command) per container, none depending on another."""
    env = {"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": "1"}
    containers = tuple(
        TaskContainer(name, essential, (), command, env, f"jd/{name}/task", 0.25, 512)
        for name, essential, command in members
    )
    return TaskSpec(job_id, 1, "task", [], env, "jd/default/task", 1.0, 2048, "ce", containers=containers)


def test_a_task_member_stopped_before_its_command_is_forked_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same window as above, for a member of a task: its start returns once the command exists, so the stop
    # that comes while the supervisor loops is delivered to the command (not swallowed until the 600 s SIGKILL).
    events: list[tuple[str, TaskStarted | TaskStopped]] = []
    launcher = slow_launcher(tmp_path, monkeypatch, events)
    try:
        launcher.launch(task("job-1", ("a", True, ["sleep", "600"]), ("b", False, ["sleep", "600"])))
        journal = tmp_path / "work" / "journal"
        wait_until(lambda: "pid job-1#1/a " in journal.read_text(), "the first member's supervisor to run")
        launcher.stop("job-1", 1, "enough")
        wait_until(lambda: any(isinstance(e, TaskStopped) for _, e in events), "the stopped task to end", 60.0)
        stopped = next(e for _, e in events if isinstance(e, TaskStopped))
        assert (stopped.exit_code, stopped.status_reason) == (128 + signal.SIGTERM, "enough")
        # AND each member's supervisor recorded its exit under its own key
        assert {"exit job-1#1/a 143", "exit job-1#1/b 143"} <= set(journal.read_text().splitlines())
    finally:
        launcher.shutdown()


def journal_task(local: Local, spec: TaskSpec, *lines: str) -> None:
    """What an earlier run of the server (and the members' supervisors) left in the journal about `spec`."""
    with (local.root / "journal").open("a") as f:
        f.write(f"task {spec.key} {task_group.task_label(spec)}\n" + "".join(f"{line}\n" for line in lines))


def test_recover_settles_a_task_whose_essential_members_exited_unwatched(local: Local) -> None:
    # GIVEN a task whose two essential members exited while nobody watched, b (4) before a (0), a non-essential member
    # still running (unwatched: killed now), and one never started
    job_id = f"task-{uuid.uuid4()}"
    spec = task(job_id, ("a", True, ["x"]), ("b", True, ["x"]), ("c", False, ["x"]), ("d", False, ["x"]))
    survivor = sleeper(AWS_BATCH_JOB_ID=job_id, AWS_BATCH_JOB_ATTEMPT="1")
    try:
        journal_task(
            local, spec, f"pid {job_id}#1/c {survivor.pid}", f"exit {job_id}#1/b 4", f"exit {job_id}#1/a 0",
        )  # fmt: skip
        # WHEN it is recovered
        assert local.launcher.recover(job_id, 1) is True
        # THEN the survivor was killed, and the task's end is the coordinator's: b exited first, so b ended it
        assert survivor.wait(timeout=5) == -signal.SIGKILL
        ecs = {"task_arn": spec.local_task_arn, "container_instance_arn": spec.local_container_instance_arn}
        ends = (
            {"name": "a", "exitCode": 0},
            {"name": "b", "exitCode": 4},
            {"name": "c", "exitCode": 137},
            {"name": "d", "reason": task_group.STOPPED_BEFORE_START},
        )
        assert local.events == [(job_id, TaskStarted(1, **ecs)), (job_id, TaskStopped(1, 4, containers=ends, **ecs))]
    finally:
        survivor.kill()
        survivor.wait()


@pytest.mark.parametrize(
    "exits",
    [
        pytest.param(["exit {}/b 0"], id="an essential member without a recorded exit"),
        pytest.param(["exit {}/a 141", "exit {}/b 0"], id="killed by SIGPIPE: it wrote after the server died"),
    ],
)
def test_recover_ends_a_task_as_a_lost_host_when_its_end_is_not_its_own(local: Local, exits: list[str]) -> None:
    job_id = f"task-{uuid.uuid4()}"
    spec = task(job_id, ("a", True, ["x"]), ("b", False, ["x"]))
    journal_task(local, spec, *(line.format(spec.key) for line in exits))
    assert local.launcher.recover(job_id, 1) is True  # started: the caller reports the lost host
    assert local.events == []


def test_a_stop_racing_the_end_signals_no_process_after_it_was_reaped(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher reaps the supervisor, cancels the attempt's timers, then forgets the attempt. A stop (TerminateJob,
    # the engine's attemptDurationSeconds) that found the attempt between the reap and the forget sent SIGTERM to
    # the reaped pid and armed a SIGKILL nobody cancelled: grace_seconds later it went to whatever process group had
    # that id by then (pids wrap within seconds at array-child rates). A reaped process is never signalled now.
    from chalicelib.compute import local as local_module

    local.launcher.grace_seconds = 0.2
    spec = local.spec(command=["sh", "-c", "sleep 0.3"])
    real_release = LocalLauncher._release
    signalled: list[tuple[int, int]] = []
    reaped: list[int] = []

    def release(self: LocalLauncher, key: str) -> None:
        running = self._running[key]
        assert running.proc is not None and running.proc.returncode is not None  # reaped
        reaped.append(running.proc.pid)
        self.stop(spec.job_id, spec.attempt, "Terminated")  # a stop arriving just now, on another thread
        real_release(self, key)

    real_killpg = os.killpg
    monkeypatch.setattr(LocalLauncher, "_release", release)
    monkeypatch.setattr(
        local_module.os, "killpg", lambda pid, sig: signalled.append((pid, sig)) or real_killpg(pid, sig)
    )
    local.launcher.launch(spec)
    local.wait_events(2)
    time.sleep(0.5)  # past the grace period
    assert reaped and [s for s in signalled if s[0] == reaped[0]] == [], "signals sent to a reaped pid"


def test_a_poll_on_another_thread_does_not_turn_the_exit_status_into_0(monkeypatch: pytest.MonkeyPatch) -> None:
    # A member's waiter (local_group.ProcessMember.wait -> wait_exit) and a stop of the same member on the
    # coordinator's thread (ProcessMember.signal -> poll) both call waitpid. If the poll reaps the process between
    # the waiter's `returncode is None` check and its waitpid, the waiter gets ECHILD and records 0 (posix_spawn,
    # tried and dropped, had no Popen _waitpid_lock). A poll while the waiter reaps returns None.
    proc = spawn(["/bin/sh", "-c", "exit 3"], {"PATH": os.defpath}, Path("/"))
    assert proc.stdout.read() == b""  # its end of output: it has exited (a zombie until reaped)
    real = os.waitpid

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        if options == 0:  # the waiter is about to block: the stop's poll gets there first
            other = threading.Thread(target=proc.poll)
            other.start()
            other.join()
        return real(pid, options)

    monkeypatch.setattr(os, "waitpid", waitpid)
    assert proc.wait_exit() == 3
