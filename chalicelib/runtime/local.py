"""The local runtime behind `batchplane up`: SQLite state, jobs as containers (or local processes), the API on a
loopback port.

State directory layout: state.db (SQLite, WAL), logs/ (one file per log stream), work/<jobId>/<attempt>/ (each
attempt's working directory), work/journal (the pids and exit statuses of attempts, compacted at each start to the
active ones and while the server runs, see compute/local_journal.py; work/journal.old until the recovery at start,
or a compaction while it runs, is over), credentials.json
(the ids of the AWS credentials granted to running containers, see compute/credentials.py), events.jsonl (every
"Batch Job State Change"), buckets/<bucket>/<key> (the objects of trigger buckets, see runtime/triggers.py),
executor-id (tells this state's Docker containers from other servers', compute/docker.py), work/docker-journal
(every container the Docker launcher created), work/nodes.journal (each multi-node attempt's shape, compacted at
each start as work/journal is, compute/nodes.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from chalicelib.compute.credentials import LocalCredentialVendor
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.nodes import NodeLauncher
from chalicelib.control.context import Services, Settings
from chalicelib.domain.jobs import ACTIVE
from chalicelib.domain.model import ComputeEnvironment, JobQueue, SchedulingPolicy
from chalicelib.domain.validation import Limits
from chalicelib.events.local import LocalEventBus
from chalicelib.runtime.engine import Engine, WorkQueue
from chalicelib.runtime.server import ApiServer
from chalicelib.runtime.state_lock import StateLock
from chalicelib.runtime.triggers import TriggerRunner
from chalicelib.store.jobs import RETENTION_SECONDS
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher

T = TypeVar("T")
log = logging.getLogger("batchplane.local")


@dataclass(frozen=True)
class LocalConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    account: str = "123456789012"
    region: str = "us-east-1"
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 30.0  # SIGTERM -> SIGKILL on terminate and timeout
    # Finished jobs, with their logs and work directories, are removed this long after they stopped (0: kept
    # forever); the same 30 days as DynamoDB's TTL on AWS (store/jobs.RETENTION_SECONDS).
    retention_days: float = RETENTION_SECONDS / 86_400
    # The keys file of `--auth` (runtime/auth.py): with it every API request must be signed by one of its keys;
    # without it the server binds only loopback addresses.
    auth_file: Path | None = None
    # docker | process | auto (docker when an engine answers); `batchplane up` defaults to auto (runtime/executor.py)
    executor: str = "process"
    # What jobs may reach on this host (domain/host_access.py): `--allow-privileged`, `--allow-host-path PREFIX`.
    allow_privileged: bool = False
    allow_host_paths: tuple[str, ...] = ()
    # A deleted queue / compute environment is removed this long after its DELETING marker (docs/adr/0021)
    deletion_grace_seconds: float = Settings.deletion_grace_ms / 1000
    # An array's children are written this many ahead of its finished ones (docs/adr/0031; 0: all at once)
    array_window: int = Settings.array_window


class LocalRepository(Repository):
    """The repository of a store no other process writes: the lists of all job queues and all compute environments,
    which every dispatch cycle reads, are kept until this repository writes one of them. A list is kept with the
    write count read before the store was, so a list read while a write was under way is not used again."""

    def __init__(self, items: SqliteItemStore) -> None:
        super().__init__(items)
        self._lock = threading.Lock()
        self._writes = 0
        self._ces: dict[int, tuple[int, list[ComputeEnvironment]]] = {}  # by limit: (write count, the list)
        self._jqs: dict[int, tuple[int, list[JobQueue]]] = {}

    def list_ces(self, after: str | None, limit: int) -> list[ComputeEnvironment]:
        if after is not None:
            return super().list_ces(after, limit)
        return self._kept(self._ces, limit, partial(Repository.list_ces, self, None, limit))

    def list_jqs(self, after: str | None = None, limit: int = 1000) -> list[JobQueue]:
        if after is not None:
            return super().list_jqs(after, limit)
        return self._kept(self._jqs, limit, partial(Repository.list_jqs, self, None, limit))

    def _kept(self, lists: dict[int, tuple[int, list[T]]], limit: int, read: Callable[[], list[T]]) -> list[T]:
        with self._lock:
            writes, kept = self._writes, lists.get(limit)
        if kept is None or kept[0] != writes:
            kept = (writes, read())
            with self._lock:
                lists[limit] = kept
        return list(kept[1])

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        finally:
            with self._lock:
                self._writes += 1

    def save_ce(self, ce: ComputeEnvironment) -> ComputeEnvironment:
        with self._writing():
            return super().save_ce(ce)

    def delete_ce(self, ce: ComputeEnvironment) -> None:
        with self._writing():
            super().delete_ce(ce)

    def save_ce_if_queues_unchanged(self, ce: ComputeEnvironment, queues: Sequence[JobQueue]) -> None:
        with self._writing():
            super().save_ce_if_queues_unchanged(ce, queues)

    def save_jq(self, jq: JobQueue, *, requires: Sequence[ComputeEnvironment | SchedulingPolicy] = ()) -> None:
        with self._writing():
            super().save_jq(jq, requires=requires)

    def delete_jq(self, jq: JobQueue) -> None:
        with self._writing():
            super().delete_jq(jq)


class ServedApp(Protocol):
    """The Chalice app `batchplane up` serves (app.py's BatchplaneApp): handed the plane built here."""

    def serve(self, services: Services | None) -> None: ...


@dataclass
class LocalRuntime:
    """`batchplane up`: the driver of the plane the composition root built (runtime/plane.py `build_local`). It starts
    and stops, in order, what runs on threads: the credentials endpoint, the work queue, the engine's loop (the
    dispatcher thread), the Docker reaper, the trigger runner and the HTTP server."""

    config: LocalConfig
    app: ServedApp
    store: SqliteItemStore
    events: LocalEventBus
    work: WorkQueue
    executor: str  # docker | process (runtime/executor.py)
    executor_note: str
    credentials: LocalCredentialVendor
    launcher: LocalLauncher | DockerLauncher
    nodes: NodeLauncher  # the launcher the Services use: multi-node jobs, then the executor's launcher
    services: Services
    engine: Engine
    triggers: TriggerRunner
    server: ApiServer
    state_lock: StateLock  # held from build to stop: one server per state directory

    def _reap(self) -> None:
        try:
            self.launcher.reap()  # type: ignore[union-attr]
            self.nodes.reap()
        except Exception:
            log.exception("removing ended containers failed")

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> None:
        self.credentials.start()
        self.work.start()
        processes = self.launcher if isinstance(self.launcher, LocalLauncher) else self.launcher.processes
        try:  # the journals keep only what the recovery may ask about
            active = list(self._active_jobs())
        except Exception:  # (they are kept whole: the recovery still finds every line)
            log.exception("reading the active jobs failed: the journals are not compacted")
        else:
            self.nodes.compact_journal(active)
            if processes is not None:
                processes.compact_journal(active)
        self.engine.start()  # (its recovery first)
        if processes is not None:
            processes.recovered()
        if self.executor == "docker":  # containers whose end was recorded just before a crash
            threading.Thread(target=self._reap, name="docker-reap", daemon=True).start()
        self.triggers.start()
        self.server.start()

    def _active_jobs(self) -> Iterator[str]:
        """The jobs the store has STARTING or RUNNING: those the recovery at start asks the launcher about (the
        sweep's own reading of the store, control/sweep.py)."""
        for queue in self.services.repo.list_jqs():
            self.services.jobs.move_legacy_active(queue.name)  # (as the sweep does first: those are active too)
            for job in self.services.jobs.iter_statuses(queue.name, ACTIVE):
                yield job.job_id

    def stop(self) -> None:
        """Stop accepting requests, stop dispatching, stop running processes (their attempts are recovered at the
        next start, per their retry strategy) or let go of running containers (they run on; the next start
        re-attaches to them), then close the store: every acknowledged write is on disk."""
        self.server.stop()
        self.triggers.stop()
        self.engine.stop()
        self.nodes.shutdown()  # (and the executor's launcher)
        self.credentials.stop()
        self.work.stop()
        self.app.serve(None)
        self.events.close()
        self.store.close()
        self.state_lock.release()
