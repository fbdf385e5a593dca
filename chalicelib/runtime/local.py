"""The local runtime behind `batchplane up`: SQLite state, local processes, the API on a loopback port.

State directory layout: state.db (SQLite, WAL), logs/ (one file per log stream), work/<jobId>/<attempt>/ (each
attempt's working directory and pidfile), events.jsonl (every "Batch Job State Change"), buckets/<bucket>/<key> (the
objects of trigger buckets, see runtime/triggers.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.logs import FileLogStore
from chalicelib.control.context import Services, Settings
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.validation import Limits
from chalicelib.events.local import LocalEventBus
from chalicelib.runtime import wiring
from chalicelib.runtime.engine import Engine, WorkQueue
from chalicelib.runtime.server import ApiServer
from chalicelib.runtime.triggers import TriggerRunner
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore


@dataclass(frozen=True)
class LocalConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    account: str = "123456789012"
    region: str = "us-east-1"
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 30.0  # SIGTERM -> SIGKILL on terminate and timeout


class LocalRuntime:
    def __init__(self, config: LocalConfig) -> None:
        from app import app  # the Chalice app module (installed as a top-level module)

        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.state_dir, 0o700)
        self.store = SqliteItemStore(str(config.state_dir / "state.db"))
        self.events = LocalEventBus(config.state_dir / "events.jsonl", account=config.account, region=config.region)
        self.work = WorkQueue()
        logs = FileLogStore(config.state_dir / "logs")
        self.launcher = LocalLauncher(
            config.state_dir / "work", logs, self._on_task_event, grace_seconds=config.grace_seconds
        )
        self.services = Services(
            repo=Repository(self.store),
            settings=Settings(account=config.account, default_region=config.region, limits=config.limits),
            events=self.events,
            logs=logs,
            launcher=self.launcher,
            defer=self.work.submit,
            wake=lambda: self.engine.wake(),  # late-bound: the engine is built from these services
        )
        self.engine = Engine(self.services)
        self.triggers = TriggerRunner(self.services, config.state_dir / "buckets")
        wiring.configure(self.services)
        self.server = ApiServer(app, config.host, config.port)

    def _on_task_event(self, job_id: str, event: TaskStarted | TaskStopped) -> None:
        self.engine.report(job_id, event)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> None:
        self.work.start()
        self.engine.start()
        self.triggers.start()
        self.server.start()

    def stop(self) -> None:
        """Stop accepting requests, stop dispatching, stop running processes (their attempts are recovered at the
        next start, per their retry strategy), then close the store: every acknowledged write is on disk."""
        self.server.stop()
        self.triggers.stop()
        self.engine.stop()
        self.launcher.shutdown()
        self.work.stop()
        wiring.configure(None)
        self.events.close()
        self.store.close()
