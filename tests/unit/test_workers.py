"""compute/workers.Workers: every item runs, threads are reused, idle ones end, wait_idle waits for the running."""

from __future__ import annotations

import threading
import time

from chalicelib.compute.workers import Workers


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_every_item_runs_once_and_a_blocked_item_does_not_hold_back_the_others() -> None:
    workers = Workers(idle_seconds=5)
    release = threading.Event()
    ran: list[int] = []
    lock = threading.Lock()

    def item(i: int) -> None:
        if i == 0:
            release.wait(10)  # a long task: the others must not wait behind it
        with lock:
            ran.append(i)

    for i in range(50):
        workers.run(str(i), lambda i=i: item(i))  # type: ignore[misc]
    assert _wait(lambda: len(ran) == 49)
    assert 0 not in ran
    assert not workers.wait_idle(0.05)  # item 0 still runs
    release.set()
    assert workers.wait_idle(10)
    assert sorted(ran) == list(range(50))


def test_threads_are_reused_and_name_the_item_they_run() -> None:
    workers = Workers(prefix="reused", idle_seconds=5)
    names: list[str] = []
    for i in range(20):
        done = threading.Event()

        def item(done: threading.Event = done) -> None:
            names.append(threading.current_thread().name)
            done.set()

        workers.run(f"job-{i}", item)
        assert done.wait(10)
        assert workers.wait_idle(10)
    assert names == [f"reused-job-{i}" for i in range(20)]
    alive = [t for t in threading.enumerate() if t.name.startswith("reused-")]
    assert len(alive) == 1  # one thread ran them all, one after another


def test_an_idle_thread_ends_and_a_failing_item_does_not_kill_its_thread() -> None:
    workers = Workers(prefix="ending", idle_seconds=0.2)

    def boom() -> None:
        raise RuntimeError("a watch that fails")

    workers.run("a", boom)
    assert workers.wait_idle(10)
    ran = threading.Event()
    workers.run("b", ran.set)
    assert ran.wait(10)
    assert _wait(lambda: not [t for t in threading.enumerate() if t.name.startswith("ending-")])
    again = threading.Event()
    workers.run("c", again.set)  # a new thread is started once the idle ones ended
    assert again.wait(10)
