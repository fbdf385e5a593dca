"""The process launcher's runs on one runner (compute/local.py `top_up`, compute/local_runs.py `_tell`, ADR 0041),
driven directly with real processes: the children of a run are queued on its runner ahead of the one running; one
that cannot be handed over (its journal line cannot be written) fails to start without holding up the others."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.local import START_FAILED, LocalLauncher
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.lifecycle import TaskStopped

WAIT_S = 30.0


class Sink:
    def __init__(self) -> None:
        self.ends: dict[str, TaskStopped] = {}
        self.changed = threading.Condition()

    def __call__(self, job_id: str, event: Any, recorded: Any = None) -> None:
        with self.changed:
            if isinstance(event, TaskStopped):
                self.ends[job_id] = event
            self.changed.notify_all()

    def wait(self, count: int) -> dict[str, TaskStopped]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.ends) >= count, WAIT_S), self.ends
            return dict(self.ends)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[tuple[LocalLauncher, Sink]]:
    sink = Sink()
    launcher = LocalLauncher((tmp_path / "work").absolute(), FileLogStore(tmp_path / "logs"), sink)
    launcher.recovered()
    yield launcher, sink
    launcher.shutdown()


def child(index: int, run: str = "run-1") -> TaskSpec:
    env = {"AWS_BATCH_JOB_ID": f"arr:{index}", "AWS_BATCH_JOB_ARRAY_INDEX": str(index), "AWS_BATCH_JOB_ATTEMPT": "1"}
    return TaskSpec(f"arr:{index}", 1, f"t-{index}", ["true"], env, f"jd/default/t-{index}", 1.0, 64, "ce", run=run)


def test_a_child_whose_hand_over_cannot_be_journaled_fails_to_start_and_the_run_goes_on(
    launcher: tuple[LocalLauncher, Sink], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run of 12 children on one runner, the journal failing (a full disk) for the hand-over of child 5
    processes, sink = launcher
    real = processes.journal.record_handed

    def record_handed(key: str, task_arn: str) -> None:
        if key == "arr:5#1":
            raise OSError(28, "No space left on device")
        real(key, task_arn)

    monkeypatch.setattr(processes.journal, "record_handed", record_handed)
    # WHEN the run is launched
    for i in range(12):
        processes.launch(child(i))
    # THEN child 5 failed to start, and every other child ran to its end on the runner
    ends = sink.wait(12)
    assert ends["arr:5"].status_reason == START_FAILED and ends["arr:5"].exit_code is None
    assert "No space left on device" in (ends["arr:5"].reason or "")
    others = {job: e.exit_code for job, e in ends.items() if job != "arr:5"}
    assert others == {f"arr:{i}": 0 for i in range(12) if i != 5}
