"""`batchplane up --executor auto` over a state directory with containers (runtime/executor.py): with no engine
answering it refuses to start instead of falling back to the process executor (which would fail each running
container's attempt as a lost host and run its job again on this host); `--executor process` is the explicit way."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("docker")

from app import app
from chalicelib import cli
from chalicelib.runtime import executor
from chalicelib.runtime.executor import ExecutorUnavailable, choose_executor


@pytest.fixture
def no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-dockerd.sock'}")  # nothing listens there
    monkeypatch.setattr(executor, "CONTAINERS_WAIT_S", 0.0)  # one ping: no engine
    state = tmp_path / "state"
    (state / "work").mkdir(parents=True)
    return state


def with_containers(state: Path) -> Path:
    (state / "work" / "docker-journal").write_text("created job-1#1\n")
    return state


def test_auto_without_an_engine_and_without_containers_falls_back_to_processes(no_engine: Path) -> None:
    (no_engine / "work" / "docker-journal").write_text("")  # the Docker launcher ran, created nothing
    chosen, note, client = choose_executor("auto", no_engine)
    assert (chosen, client) == ("process", None) and "no Docker engine answers" in note


def test_auto_refuses_a_state_directory_with_containers_when_no_engine_answers(no_engine: Path) -> None:
    with pytest.raises(ExecutorUnavailable, match="this state directory has containers") as e:
        choose_executor("auto", with_containers(no_engine))
    assert "--executor process" in str(e.value) and "start the Docker engine" in str(e.value)


def test_batchplane_up_exits_2_and_says_why(no_engine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = with_containers(no_engine)
    assert cli.main(["up", "--state-dir", str(state), "--port", "0", "--executor", "auto"], app=app) == 2
    err = capsys.readouterr().err
    assert "--executor auto" in err and "this state directory has containers" in err


def test_executor_process_is_the_explicit_way_over_containers(no_engine: Path) -> None:
    chosen, note, client = choose_executor("process", with_containers(no_engine))
    assert (chosen, client) == ("process", None) and "--executor process" in note
