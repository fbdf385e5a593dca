"""bench.server.Server.wait_idle: the benchmark waits for the server's deferred work before it measures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import server as bench_server
from bench.server import Server, ServerError


@pytest.fixture
def srv(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setattr(bench_server.time, "sleep", lambda _: None)  # windows pass at once; CPU is scripted
    s = Server()
    try:
        yield s
    finally:
        s.stop()  # never started: only removes its temporary directory


def script_cpu(monkeypatch: pytest.MonkeyPatch, srv: Server, readings: list[float]) -> list[float]:
    """The server's cumulative CPU seconds, one reading per call; returns what is left unread."""
    left = list(readings)
    monkeypatch.setattr(srv, "cpu_seconds", lambda: left.pop(0))
    return left


def test_it_returns_after_the_first_window_in_which_the_server_was_idle(
    monkeypatch: pytest.MonkeyPatch, srv: Server
) -> None:
    # GIVEN a server busy (0.4 CPU s per window) for two windows after the previous phase, then idle
    left = script_cpu(monkeypatch, srv, [10.0, 10.4, 10.8, 10.81, 99.0])
    # WHEN the bench waits for it  THEN it reads until the idle window and no further
    srv.wait_idle(window_s=0.5, cpu_s=0.02)
    assert left == [99.0]


def test_an_idle_server_is_waited_for_one_window(monkeypatch: pytest.MonkeyPatch, srv: Server) -> None:
    left = script_cpu(monkeypatch, srv, [5.0, 5.0, 99.0])
    srv.wait_idle(window_s=0.5, cpu_s=0.02)
    assert left == [99.0]


def test_a_server_that_never_goes_idle_is_an_error(monkeypatch: pytest.MonkeyPatch, srv: Server) -> None:
    script_cpu(monkeypatch, srv, [float(i) for i in range(10)])
    with pytest.raises(ServerError, match="still busy"):
        srv.wait_idle(window_s=0.5, cpu_s=0.02, timeout=0.0)


def test_container_workloads_are_skipped_with_a_line_when_no_engine_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.__main__ import run_one

    # GIVEN no engine at DOCKER_HOST
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    # WHEN a container workload is run THEN it is skipped (not an error), saying how to get an engine
    result = run_one("docker-independent-200", quick=True, wrap=None, keep_dir=False, profile_dir=None, array_poll_s=1)
    assert set(result) == {"workload", "skipped"}
    assert "no Docker engine answers" in result["skipped"] and "scripts/docker-up.sh" in result["skipped"]
    assert "docker-independent-200 skipped" in capsys.readouterr().err
