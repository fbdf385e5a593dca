"""How a stop finds an array child's command among its runner's processes (compute/local_runs.py `command_of`,
`signal_command`, docs/adr/0041): with children queued ahead in its stdin, a runner may have started the next child
by the time a stop of the one before it is sent, so the stop is sent to the child's own processes, found by its
variables or its work dir, never to the runner's group. Real processes: a shell standing in for the runner."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chalicelib.compute.local_runs import close_command, command_of, signal_command

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc")


def _runner(cwd: Path, job_id: str, attempt: int, command: str) -> subprocess.Popen[bytes]:
    """A shell that forks `command` (not exec: `; :` keeps it the parent, as a runner) with the child's variables."""
    script = f"AWS_BATCH_JOB_ID={job_id} AWS_BATCH_JOB_ATTEMPT={attempt} /bin/sh -c '{command}'; :"
    return subprocess.Popen(["/bin/sh", "-c", script], cwd=cwd, start_new_session=True)


def _found(runner: int, job_id: str, attempt: int) -> int:
    """The handle `command_of` gives once the runner's command runs (waited for, up to 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        handle = command_of(runner, job_id, attempt)
        if handle is not None:
            return handle
        time.sleep(0.01)
    raise AssertionError(f"no command of {job_id}#{attempt} under {runner}")


def _found_only_as(runner: int, attempt: tuple[str, int], *others: tuple[str, int]) -> None:
    close_command(_found(runner, *attempt))
    for job_id, number in others:
        assert command_of(runner, job_id, number) is None


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


Start = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts a runner stand-in (`_runner`, in tmp_path unless told), killed with its group at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def run(job_id: str, attempt: int, command: str, cwd: Path = tmp_path) -> subprocess.Popen[bytes]:
        started.append(_runner(cwd, job_id, attempt, command))
        return started[-1]

    yield run
    for p in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_the_command_is_found_by_its_variables_and_another_childs_is_not(start: Start) -> None:
    # GIVEN a runner whose command is child 2's (attempt 1), run in a directory that is not any child's work dir
    runner = start("arr:2", 1, "sleep 30")
    # THEN a stop of child 2 finds it; one of child 1 (ended), or of another attempt of 2, does not
    _found_only_as(runner.pid, ("arr:2", 1), ("arr:1", 1), ("arr:2", 2))


def test_the_command_is_found_by_its_work_dir_when_its_variables_are_gone(tmp_path: Path, start: Start) -> None:
    # GIVEN a child's command that replaced itself with a program of an empty environment, in its work dir
    workdir = tmp_path / "arr_7" / "3"
    workdir.mkdir(parents=True)
    runner = start("other:1", 1, "exec env -i sleep 30", cwd=workdir)
    # THEN it is found by its directory, and only as that child's
    _found_only_as(runner.pid, ("arr:7", 3), ("arr:7", 4), ("arr:17", 3))


def test_a_signal_reaches_the_command_and_its_descendants_not_the_runner(tmp_path: Path, start: Start) -> None:
    # GIVEN a child's command with a process of its own that cleans up on SIGTERM, under a runner that goes on
    mark = tmp_path / "cleaned"
    (tmp_path / "worker.sh").write_text(f"trap 'touch {mark}; exit 0' TERM; while :; do sleep 0.05; done\n")
    runner = start("arr:4", 1, f"sh {tmp_path / 'worker.sh'} & wait")
    handle = _found(runner.pid, "arr:4", 1)
    (command,) = _children(runner.pid)
    wait = time.monotonic() + 10
    while time.monotonic() < wait and not _children(command):
        time.sleep(0.01)
    (worker,) = _children(command)
    # WHEN it is sent SIGTERM
    signal_command(handle, signal.SIGTERM)
    close_command(handle)
    # THEN both end, the worker on SIGTERM itself (its trap ran), and the runner does not end (it would run its
    # next child): it ends by itself, successfully
    assert runner.wait(10) == 0
    deadline = time.monotonic() + 10  # (the worker touches its mark, then exits)
    while time.monotonic() < deadline and not (mark.exists() and not any(map(_alive, (command, worker)))):
        time.sleep(0.01)
    assert mark.exists()
    assert not _alive(command) and not _alive(worker)


def _alive(pid: int) -> bool:
    """Running: not gone, nor a zombie waiting to be reaped (an orphan's reaper may be slow)."""
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    except OSError:
        return False


def test_a_signal_to_a_command_that_ended_reaches_nothing(start: Start) -> None:
    # GIVEN a pidfd of a child's command that has ended since (its runner moved on to a new command)
    runner = start("arr:5", 1, "sleep 0.3")
    handle = _found(runner.pid, "arr:5", 1)
    after = start("arr:6", 1, "sleep 30")
    assert runner.wait(10) == 0
    # WHEN it is signalled THEN nothing else is (the next command lives on)
    signal_command(handle, signal.SIGKILL)
    close_command(handle)
    assert after.poll() is None
