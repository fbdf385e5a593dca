"""One single-container attempt on the Docker executor (compute/docker.py) and what its watcher reads of its
container: the output, copied line by line into the attempt's log stream, and the end (exit code, OOM kill, or
an engine that lost it), its stop, and its removal once its end is recorded. The launcher decides what is reported."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import NotFound

from chalicelib.compute import docker_engine
from chalicelib.compute.docker_state import LOST_HOST, OOM_EXIT, OOM_REASON
from chalicelib.compute.logs_port import LogStore
from chalicelib.compute.port import CredentialVendor, TaskSpec
from chalicelib.domain.jobs import TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStopped

log = logging.getLogger("batchplane.docker")

DRAIN_TIMEOUT_S = 10.0  # the read of what the log follow missed, once the container ended
ENGINE_LOST_S = 600.0  # waiting for a container's end: how long the engine may stay unreachable (then: lost host)
WAIT_BACKOFF_S = (0.5, 10.0)  # the first and the longest pause between two waits while it is unreachable


@dataclass
class Attempt:
    job_id: str
    attempt: int
    log_stream: str
    grace: float = 30.0  # SIGTERM -> SIGKILL: stopTimeout where the container has one, else the server's
    spec: TaskSpec | None = None  # None for a container re-attached after a restart
    container: str | None = None  # id, once created
    volumes: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    lost: bool = False  # the server shuts down: nothing more is reported or logged
    since: float | None = None  # re-attached: log lines from this epoch second on (those up to last_ms are known)
    last_ms: int | None = None
    tail_ms: int | None = None  # the latest timestamp appended by this watcher, and the lines appended at it
    tail: list[str] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.job_id}#{self.attempt}"


def follow(client: docker.APIClient, logs: LogStore, a: Attempt) -> TaskStopped | None:
    """Copy the container's output into the log stream until it ends; its end, or None when the server shuts down
    meanwhile (nothing is to be reported)."""
    assert a.container is not None
    try:
        for frame in docker_engine.log_frames(client, a.container, a.since, a.streams):
            if a.lost:
                return None
            _append(logs, a, frame)
    except Exception:  # a log failure must not lose the exit (the wait below tells it)
        if a.lost:
            return None
        log.exception("reading the output of %s failed", a.key)
    if a.lost:
        return None
    status = wait(client, a)
    if status is None:
        # the engine lost it, or stayed unreachable: its end cannot be known
        return None if a.lost else TaskStopped(a.attempt, None, status_reason=LOST_HOST)
    _drain(client, logs, a)
    code = int(status.get("StatusCode", -1))
    reason = OOM_REASON if code == OOM_EXIT and _oom_killed(client, a) else None
    why = a.stop_reason
    return TaskStopped(a.attempt, code, reason=reason, status_reason=why, timed_out=why == TIMEOUT_REASON)


def wait(client: docker.APIClient, a: Attempt) -> dict[str, Any] | None:
    """The container's end (`docker wait`); None when the engine lost it (NotFound), when it stays unreachable
    for ENGINE_LOST_S, or when the server shuts down. An engine that restarts or drops its socket makes the wait
    fail with requests' ConnectionError (not a DockerException): the wait is retried with a backoff, and the
    real end (exit code, OOM) is reported once the engine answers again."""
    assert a.container is not None
    deadline, pause = time.monotonic() + ENGINE_LOST_S, WAIT_BACKOFF_S[0]
    while not a.lost:
        try:
            return dict(client.wait(a.container, timeout=None))
        except NotFound:  # removed behind our back (or by an engine that lost it)
            log.warning("the container of %s is gone: its attempt fails as a lost host", a.key)
            return None
        except Exception:
            if time.monotonic() >= deadline:
                log.exception("the engine stayed unreachable; %s fails as a lost host", a.key)
                return None
            log.warning("waiting for the end of %s failed; retrying in %.1fs", a.key, pause, exc_info=True)
        end = time.monotonic() + pause
        while not a.lost and time.monotonic() < end:
            time.sleep(min(0.25, pause))
        pause = min(pause * 2, WAIT_BACKOFF_S[1])
    return None


def _oom_killed(client: docker.APIClient, a: Attempt) -> bool:
    assert a.container is not None
    try:
        return docker_engine.oom_killed(client, a.container, wait=a.stop_reason is None)
    except Exception:  # the exit code is reported all the same
        log.exception("inspecting the end of %s failed", a.key)
        return False


def _append(logs: LogStore, a: Attempt, frame: bytes) -> None:
    if lines := docker_engine.log_lines(frame, a.last_ms):
        logs.append(a.log_stream, lines)
        for ms, text in lines:
            if a.tail_ms is None or ms > a.tail_ms:
                a.tail_ms, a.tail = ms, []
            if ms == a.tail_ms:
                a.tail.append(text)


def _drain(client: docker.APIClient, logs: LogStore, a: Attempt) -> None:
    """The container ended: append what the log follow missed (it can end before the engine wrote a last line
    without a newline: ADR 0016). One read, from the latest timestamp this watcher appended on."""
    assert a.container is not None
    after, appended = (a.tail_ms, a.tail) if a.tail_ms is not None else (a.last_ms, None)
    try:
        frames = docker_engine.logged_since(client, a.container, after, DRAIN_TIMEOUT_S)
    except Exception:  # the end is reported all the same
        log.exception("reading the last output of %s failed", a.key)
        return
    if (missed := docker_engine.unseen_lines(frames, after, appended)) and not a.lost:
        logs.append(a.log_stream, missed)


def stopped_before_start(attempt: int, reason: str) -> TaskStopped:
    """The end of an attempt stopped before its container started (it never runs), as ECS reports a task stopped
    while it was provisioning: no exit code, the stop's reason (a timeout flagged)."""
    return TaskStopped(attempt, None, status_reason=reason, timed_out=reason == TIMEOUT_REASON)


def stop(client: docker.APIClient, a: Attempt) -> None:
    """`docker stop`: the image's stop signal (SIGTERM), then SIGKILL after the grace period, as ECS stops a task; on
    its own thread, so the caller does not wait for it."""
    container = a.container
    if container is None:
        return  # not created yet: the watcher sees stop_reason and never starts it

    def run() -> None:
        try:
            client.stop(container, timeout=int(a.grace))
        except Exception:  # DockerException, or requests' errors when the engine is unreachable
            log.exception("stopping the container of %s failed", a.key)

    threading.Thread(target=run, name=f"stop-{a.key}", daemon=True).start()


class Removals:
    """Removes ended containers (and their volumes) once their end is recorded, and releases their credentials, on
    its own thread: off the dispatcher's. Then `settled(key)`: the attempt is done with (compute/docker.py)."""

    def __init__(
        self,
        client: docker.APIClient,
        credentials: CredentialVendor | None,
        settled: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.client, self.credentials, self.settled = client, credentials, settled
        self._queue: queue.Queue[tuple[Attempt, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="docker-remover", daemon=True)
        self._thread.start()

    def remove(self, a: Attempt) -> None:
        """The container ended and its end is recorded: remove it, then release its credentials."""
        self._queue.put((a, "remove"))

    def release(self, a: Attempt) -> None:
        """An attempt that never ran (its container is gone already): release its credentials."""
        self._queue.put((a, "release"))

    def close(self, timeout: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            a, what = item
            try:
                if what == "remove" and a.container is not None:
                    with contextlib.suppress(NotFound):  # gone already: its credentials still go below
                        self.client.remove_container(a.container, v=True, force=True)
                    remove_volumes(self.client, a.volumes)
            except Exception:
                log.exception("removing the container of %s failed", a.key)
            # (a failure must not end this thread: every later end would keep its container)
            with _logged("releasing the credentials of %s failed", a.key):
                if self.credentials is not None:
                    self.credentials.release(a.key)
            with _logged("settling %s failed", a.key):
                self.settled(a.key)  # after the removal: see DockerLauncher.settled


@contextlib.contextmanager
def _logged(message: str, key: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception(message, key)


def remove_volumes(client: docker.APIClient, names: Iterable[str]) -> None:
    for volume in names:
        with contextlib.suppress(Exception):
            client.remove_volume(volume, force=True)
