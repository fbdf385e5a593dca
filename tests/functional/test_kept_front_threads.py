"""The kept RUNNABLE front (control/runnable_cache.py) under the local engine's threads, as `batchplane up` runs it.

The engine's thread dispatches from its kept lists while API requests (other threads) submit, cancel, terminate and
tag jobs, task events arrive from the launcher's own thread, and the work queue's thread writes array children and
cancels them. The periodic sweep, which drops every kept list, is pushed past the test: a write the cache missed
would leave a job RUNNABLE with the capacity free, and the test waits for every job to end.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.api import gateway
from chalicelib.compute.port import NullLauncher, TaskSpec
from chalicelib.control.context import Services, Settings
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import PENDING, RUNNABLE, TERMINAL
from chalicelib.runtime import engine as engine_module
from chalicelib.runtime.engine import Engine, WorkQueue
from chalicelib.runtime.local import LocalConfig, LocalRepository
from chalicelib.runtime.plane import local_engine
from chalicelib.store.sqlite import SqliteItemStore

EXEC_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"


class QuickLauncher(NullLauncher):
    """Runs every attempt on its own thread: started, then stopped (exit 1 for a job named "flaky" on its first
    attempt, so its retry strategy puts it back to RUNNABLE); a stop asked for ends the attempt with 137."""

    def __init__(self) -> None:
        super().__init__()
        self.report: Any = None
        self._tasks: queue.SimpleQueue[tuple[str, int, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tasks", daemon=True)
        self._thread.start()

    def launch(self, spec: TaskSpec) -> None:
        super().launch(spec)
        flaky = spec.job_definition_name == "flaky" and spec.attempt == 1
        self._tasks.put((spec.job_id, spec.attempt, 1 if flaky else 0))

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        super().stop(job_id, attempt, reason)
        self._tasks.put((job_id, attempt, 137))

    def close(self) -> None:
        self._tasks.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            job_id, attempt, code = task
            time.sleep(0.001)
            self.report(job_id, lifecycle.TaskStarted(attempt))
            self.report(job_id, lifecycle.TaskStopped(attempt, code))


def _call(svc: Services, op: str, /, **body: Any) -> dict[str, Any]:
    status, _, text = gateway.handle(svc, "POST", f"/v1/{op.lower()}", {}, json.dumps(body))
    out: dict[str, Any] = json.loads(text) if text else {}
    assert status == 200, (op, out)
    return out


def test_no_job_is_left_runnable_while_requests_and_task_events_race_the_dispatcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SWEEP_SECONDS", 3600.0)  # no sweep drops the kept lists meanwhile
    store = SqliteItemStore(str(tmp_path / "state.db"))
    launcher, work = QuickLauncher(), WorkQueue()
    engine: Engine | None = None

    def plane_reactor() -> Any:
        assert engine is not None
        return engine.reactor

    def wake() -> None:
        assert engine is not None
        engine.wake()

    svc = Services(
        repo=LocalRepository(store),
        settings=Settings(array_window=4),
        launcher=launcher,
        defer=work.submit,
        wake=wake,
        plane_reactor=plane_reactor,
    )
    engine = local_engine(svc, LocalConfig(state_dir=tmp_path))
    assert engine.dispatcher.runnable is not None
    launcher.report = engine.report
    res = {"type": "FARGATE", "maxvCpus": 3, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}
    _call(svc, "CreateComputeEnvironment", computeEnvironmentName="ce", type="MANAGED", computeResources=res)
    order = [{"order": 1, "computeEnvironment": "ce"}]
    for name, priority in (("q1", 1), ("q2", 2)):
        _call(svc, "CreateJobQueue", jobQueueName=name, priority=priority, computeEnvironmentOrder=order)
    for name, vcpus in (("one", 1), ("two", 2), ("flaky", 1)):
        container = {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": str(vcpus)},
                {"type": "MEMORY", "value": str(2048 * vcpus)},
            ],
            "executionRoleArn": EXEC_ROLE,
        }
        _call(
            svc,
            "RegisterJobDefinition",
            jobDefinitionName=name,
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties=container,
        )
    work.start()
    engine.start()
    submitted: list[str] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def submitter(seed: int, count: int = 60) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(count):
                body: dict[str, Any] = {
                    "jobName": "j",
                    "jobQueue": rng.choice(["q1", "q2"]),
                    "jobDefinition": rng.choice(["one", "one", "two", "flaky"]),
                }
                if body["jobDefinition"] == "flaky":
                    body["retryStrategy"] = {"attempts": 2}
                if rng.random() < 0.1:
                    body["arrayProperties"] = {"size": rng.randint(2, 12)}
                with lock:
                    if submitted and rng.random() < 0.15:
                        body["dependsOn"] = [{"jobId": rng.choice(submitted[-5:])}]
                job_id = _call(svc, "SubmitJob", **body)["jobId"]
                with lock:
                    submitted.append(job_id)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def meddler(seed: int) -> None:
        """Cancels, terminates and tags waiting jobs while the dispatcher serves its kept lists."""
        rng = random.Random(seed)
        try:
            for _ in range(80):
                waiting = [
                    j
                    for q in ("q1", "q2")
                    for kids in (False, True)
                    for s in (RUNNABLE, PENDING)
                    for j in svc.jobs.iter_queue(q, s, children=kids)
                ]
                if waiting:
                    job = rng.choice(waiting)
                    what = rng.random()
                    if what < 0.3:
                        _call(svc, "CancelJob", jobId=job.job_id, reason="test")
                    elif what < 0.4:
                        _call(svc, "TerminateJob", jobId=job.job_id, reason="test")
                    elif not job.is_array_child:
                        path = "/v1/tags/" + quote(job.arn, safe="")
                        gateway.handle(svc, "POST", path, {}, json.dumps({"tags": {"k": str(rng.random())}}))
                time.sleep(0.002)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=submitter, args=(i,)) for i in (1, 2)]
    threads += [threading.Thread(target=meddler, args=(i,)) for i in (3, 4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        # A last wave nobody cancels: a submission or retry the kept lists missed would wait for ever.
        submitter(5, 30)
        assert not failures, failures
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            unfinished = [j for j in svc.jobs.get_many(submitted) if j.status not in TERMINAL]
            if not unfinished:
                break
            time.sleep(0.05)
        stuck = [
            (j.job_id, j.status, j.status_reason) for j in svc.jobs.get_many(submitted) if j.status not in TERMINAL
        ]
        assert not stuck, stuck
        keys = [s.key for s in launcher.launched]
        assert len(keys) == len(set(keys))
        assert len(keys) > 50, len(keys)  # the dispatcher placed jobs while the others wrote
    finally:
        engine.stop()
        work.stop()
        launcher.close()
        store.close()
