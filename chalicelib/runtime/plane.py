"""The composition root: the one place that builds a plane — store, event sink, launchers, Services, the reactor, the
dispatcher — from a configuration read once, and hands it to its driver; and the one place that decides which
plane app.py serves.

- `build_local(LocalConfig, app)`: `batchplane up` (SQLite, processes or containers, the engine, the trigger runner,
  the HTTP server), driven by `runtime/local.LocalRuntime`.
- `build_aws(AwsConfig)`: one Lambda container (DynamoDB, EventBridge, ECS), driven by `runtime/aws.AwsRuntime`.
  `aws_runtime()` builds it once per container from `AwsConfig.from_environment()` (every setting read once).
- Both build their one reactor with `react.reactor_for` and hand it to everything that applies events (the engine
  or the Lambda entry points, the trigger runner, and the API through `Services.plane_reactor`), and their
  dispatcher with `dispatcher_for`, which states how the two runtimes' dispatchers differ, and why.

app.py asks `services()` for every API request and `aws_runtime()` for every Lambda entry point. Neither driver
imports this module (the local one must not pull in the AWS runtime: an import-linter contract says so).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from chalice.app import Chalice

from chalicelib.compute.capacity_aws import AsgCapacity
from chalicelib.compute.credentials import LocalCredentialVendor, configured_port
from chalicelib.compute.ecs import EcsLauncher
from chalicelib.compute.ecs_nodes import EcsNodeLauncher
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.nodes import DockerNodes, Loopback, NodeLauncher
from chalicelib.compute.port import Launcher
from chalicelib.control.context import Clock, IdFactory, Services, Settings, SystemClock, UuidFactory
from chalicelib.control.dispatch import ActiveJobs, Dispatcher
from chalicelib.control.react import Reactor, reactor_for
from chalicelib.control.retention import DAY_MS
from chalicelib.control.run_sizes import RunSizes
from chalicelib.control.runnable_cache import RunnableCache
from chalicelib.domain.host_access import HostAccess
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import ChildFinished, TaskStarted, TaskStopped
from chalicelib.events.eventbridge import EventBridgeSink
from chalicelib.events.local import LocalEventBus
from chalicelib.events.port import LocalSchedules, SchedulePort
from chalicelib.events.schedules import EventBridgeSchedules
from chalicelib.runtime.auth import AuthConfigError, Gate, exposure_error, gate_from_file
from chalicelib.runtime.aws import ENV_RUNTIME, AwsConfig, AwsRuntime, Clients, Controls
from chalicelib.runtime.aws.adapters import ComputeEnvironments, WakeQueue
from chalicelib.runtime.engine import HOST_ID, Engine, RunDelivery, WorkQueue
from chalicelib.runtime.executor import choose_executor, state_id
from chalicelib.runtime.local import LocalConfig, LocalRepository, LocalRuntime, ServedApp
from chalicelib.runtime.server import ApiServer
from chalicelib.runtime.state_lock import StateLock
from chalicelib.runtime.triggers import TriggerRunner
from chalicelib.store.invocation_cache import InvocationCache
from chalicelib.store.port import ItemStore
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher

log = logging.getLogger("batchplane.plane")
_T = TypeVar("_T")

# -- the dispatcher: where the two runtimes differ ------------------------------------------------------------------

# A job waiting for capacity gets its CAPACITY reason once it has waited this long (Dispatcher.reason_grace_ms): in a
# backlog of short jobs, each reaches the head of its queue and leaves it within milliseconds.
LOCAL_REASON_GRACE_MS = 250


def dispatcher_for(
    svc: Services,
    reactor: Reactor,
    config: LocalConfig | AwsConfig,
    active: ActiveJobs | None = None,
    runnable: RunnableCache | None = None,
    runs: RunSizes | None = None,
) -> Dispatcher:
    """The plane's dispatcher. Its options follow from what each runtime guarantees it, and differ only here:

    - `active` (ActiveJobs, the capacity in use): locally kept in memory, because the engine's thread is the only
      one that claims or stops jobs and its reactor observes every job written; on AWS None (read the store each
      cycle), because dispatch invocations come and go with Lambda containers and other Lambdas apply task events.
    - `consistent_reads`: locally True, SQLite's queries return the last write, so a claim is written against the
      job as the snapshot read it; on AWS False, DynamoDB's indexes lag, so a claim reads the job again.
    - `reason_grace_ms`: locally LOCAL_REASON_GRACE_MS, the engine's loop runs a cycle when a deferred CAPACITY
      reason is due (`reasons_due_in`); on AWS 0, nothing would wake the `dispatch` Lambda for one, so reasons are
      written at once.
    - `runnable`: locally each queue's first RUNNABLE jobs are kept between cycles (control/runnable_cache.py),
      because the SQLite store tells what was written into their index partitions, the reactor reports every job
      it saves, and the engine's is the only claim; on AWS None, every invocation reads them.
    - `runs`: with the local process executor, array children are claimed in runs that hold one slot
      (domain/runs.py, docs/adr/0040), because its runners hand a run's children their slot one after another;
      otherwise None (each child is its own task: a run's queued children would hold no slot of their own).
    """
    new_task_id = lambda: uuid.uuid4().hex  # noqa: E731
    if isinstance(config, LocalConfig):
        assert active is not None, "the local dispatcher keeps the capacity in use"
        return Dispatcher(
            svc,
            reactor,
            new_task_id,
            active=active,
            reason_grace_ms=LOCAL_REASON_GRACE_MS,
            consistent_reads=True,
            runnable=runnable,
            runs=runs,
        )
    return Dispatcher(svc, reactor, new_task_id)


# -- the local plane ----------------------------------------------------------------------------------------------


def local_engine(
    svc: Services,
    config: LocalConfig,
    *,
    retention_ms: int = 0,
    forget: Callable[[Job], None] = lambda job: None,
    lost_host: str | None = HOST_ID,
    runs: bool = False,
) -> Engine:
    """The local plane's reactor and dispatcher (the capacity in use kept in memory, `ActiveJobs`, and each queue's
    RUNNABLE front, `RunnableCache`), and the engine that drives both: the reactor observes every job it persists
    for the dispatcher, and counts finished array children into their parents in the engine's batches."""
    active = ActiveJobs()
    items = svc.repo.items
    runnable = RunnableCache(items) if isinstance(items, SqliteItemStore) else None
    sizes = RunSizes() if runs else None  # (`runs`: the launcher runs a run's children on one slot)
    engine: Engine | None = None

    def count_child(parent_id: str, event: ChildFinished) -> None:
        _built(engine).count_child(parent_id, event)

    def observe(job: Job) -> None:
        active.changed(job)
        if runnable is not None:
            runnable.changed(job)
        if sizes is not None:
            sizes.observe(job)

    reactor = reactor_for(svc, observe=observe, count_child=count_child)
    if sizes is not None:
        reactor.delivery = RunDelivery(svc, active)
    engine = Engine(
        svc,
        reactor,
        dispatcher_for(svc, reactor, config, active, runnable, sizes),
        retention_ms=retention_ms,
        forget=forget,
        lost_host=lost_host,
    )
    return engine


def _local_launchers(
    config: LocalConfig,
    logs: FileLogStore,
    docker_client: Any,
    credentials: LocalCredentialVendor,
    on_event: Callable[..., None],
) -> tuple[LocalLauncher | DockerLauncher, NodeLauncher]:
    """The executor's launcher, and in front of it the node launcher (multi-node parallel jobs: one task per node on
    either executor, compute/nodes.py), which reports the executor's task events on to `on_event`."""
    work = config.state_dir / "work"
    nodes = NodeLauncher(on_event, work)
    if docker_client is None:
        launcher = LocalLauncher(  # lost_host: as the sweep's (local_engine), the recovery's end carries the ARNs
            work,
            logs,
            nodes.on_event,
            grace_seconds=config.grace_seconds,
            credentials=credentials,
            lost_host=HOST_ID,
            sink_records=True,  # (nodes.on_event: Engine.report's `recorded`)
        )
        nodes.attach(launcher, Loopback())
        return launcher, nodes
    from chalicelib.compute.docker import LABEL_STATE, DockerLauncher

    docker = DockerLauncher(
        docker_client,
        state_id(config.state_dir),
        work,
        logs,
        nodes.on_event,
        grace_seconds=config.grace_seconds,
        # attempts the process executor started before a switch of executors are recovered its way
        processes=LocalLauncher(work, logs, nodes.on_event, sink_records=True),
        credentials=credentials,
    )
    nodes.attach(docker, DockerNodes(docker_client, state_id(config.state_dir), docker.name, LABEL_STATE))
    return docker, nodes


def build_local(config: LocalConfig, app: ServedApp) -> LocalRuntime:
    """`batchplane up`'s plane, handed to the app it serves (`ServedApp.serve`) and to its driver."""
    gate = gate_from_file(config.auth_file) if config.auth_file is not None else None
    if gate is None and (why := exposure_error(config.host)):
        raise AuthConfigError(why)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.state_dir, 0o700)
    lock = StateLock.acquire(config.state_dir)  # StateDirInUse: another server runs on this state
    try:
        return _build_local(config, app, gate, lock)
    except BaseException:
        lock.release()
        raise


def _build_local(config: LocalConfig, app: ServedApp, gate: Gate | None, lock: StateLock) -> LocalRuntime:
    store = SqliteItemStore(str(config.state_dir / "state.db"))
    events = LocalEventBus(config.state_dir / "events.jsonl", account=config.account, region=config.region)
    work = WorkQueue()
    logs = FileLogStore(config.state_dir / "logs")
    executor, executor_note, docker_client = choose_executor(config.executor, config.state_dir)
    # Jobs with a jobRoleArn get this server's own AWS credentials the ECS way (docs/adr/0017).
    credentials = LocalCredentialVendor(
        boto3.session.Session(),
        docker_client=docker_client,
        grants_file=config.state_dir / "credentials.json",
        fallback_port=configured_port(),  # when 169.254.170.2:80 cannot be bound (docs/adr/0037)
    )
    engine: Engine | None = None

    def on_task_event(
        job_id: str, event: TaskStarted | TaskStopped, recorded: Callable[[], None] | None = None
    ) -> None:
        _built(engine).report(job_id, event, recorded)

    launcher, nodes = _local_launchers(config, logs, docker_client, credentials, on_task_event)
    services = Services(
        repo=LocalRepository(store),
        settings=Settings(
            account=config.account,
            default_region=config.region,
            limits=config.limits,
            host_access=HostAccess(
                allow_privileged=config.allow_privileged,
                # Resolved once: a job's sourcePath is compared with these after its own symlinks are resolved.
                host_path_prefixes=tuple(os.path.realpath(p) for p in config.allow_host_paths),
            ),
            deletion_grace_ms=int(config.deletion_grace_seconds * 1000),
            array_window=config.array_window,
        ),
        events=events,
        logs=logs,
        launcher=nodes,
        defer=work.submit,
        wake=lambda: _built(engine).wake(),  # late-bound, as is the reactor: both are built from these Services
        plane_reactor=lambda: _built(engine).reactor,
    )
    engine = local_engine(
        services,
        config,
        retention_ms=int(config.retention_days * DAY_MS),
        forget=nodes.forget,
        lost_host=HOST_ID if executor == "process" else None,  # containers are re-attached instead
        runs=executor == "process",  # array children on kept runners (compute/local_runs.py)
    )
    app.serve(services)
    return LocalRuntime(
        config=config,
        app=app,
        store=store,
        events=events,
        work=work,
        executor=executor,
        executor_note=executor_note,
        credentials=credentials,
        launcher=launcher,
        nodes=nodes,
        services=services,
        engine=engine,
        triggers=TriggerRunner(services, engine.reactor, config.state_dir / "buckets"),
        server=ApiServer(cast(Chalice, app), config.host, config.port, gate),
        state_lock=lock,
    )


# -- the AWS plane ------------------------------------------------------------------------------------------------


def build_aws(
    config: AwsConfig,
    clients: Clients | None = None,
    *,
    store: ItemStore | None = None,
    controls: Controls | None = None,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
) -> AwsRuntime:
    """One Lambda container's plane. No AWS client is made here: each on the first call that needs it (`Clients`).
    `store` (tests: SQLite), `controls`, `clock` and `ids` replace what the configuration would build."""
    clients = clients or Clients(config.region)
    if store is None:
        from chalicelib.store.dynamo import DynamoItemStore

        store = DynamoItemStore(config.table, region=config.region, host=config.dynamodb_endpoint)
    items = InvocationCache(store)
    repo = Repository(items)
    sink = EventBridgeSink(clients.factory("events"), bus=config.event_bus, source=config.event_source)
    wakes = WakeQueue(clients, config.dispatch_queue_url)
    capacity = AsgCapacity(clients.factory("autoscaling"))  # its client is made on first use
    services: Services | None = None
    reactor: Reactor | None = None

    def on_task_event(job_id: str, event: TaskStarted | TaskStopped) -> None:
        """A task ECS refused to start: its attempt's TaskStopped (a multi-node job's node task: to its job)."""
        from chalicelib.runtime.task_events import apply_task_event

        apply_task_event(_built(services), _built(reactor), job_id, event)

    ecs = EcsLauncher(
        clients.factory("ecs"),
        config.cluster,
        ComputeEnvironments(repo.get_ce).get,
        on_event=on_task_event,
        precheck=config.ecs_precheck,
        log_group=config.log_group,
        execution_role_arn=config.execution_role_arn,
    )
    launcher: Launcher = EcsNodeLauncher(ecs, clients.factory("ec2"))  # multi-node jobs: docs/adr/0027
    services = Services(
        repo=repo,
        settings=config.settings,
        clock=clock or SystemClock(),
        ids=ids or UuidFactory(),
        wake=wakes.wake,
        events=sink,
        launcher=launcher,
        effects_from_stream=True,  # the table's stream is the outbox: on_stream runs what each change carries
        schedules=_schedules(config, clients),
        release_capacity=capacity.release,
        plane_reactor=lambda: _built(reactor),
    )
    reactor = reactor_for(services)
    return AwsRuntime(
        config,
        clients=clients,
        store=store,
        items=items,
        services=services,
        reactor=reactor,
        dispatcher=dispatcher_for(services, reactor, config),
        sink=sink,
        wakes=wakes,
        capacity=capacity,
        controls=controls,
    )


def _built(part: _T | None) -> _T:
    """A part of the plane bound late, because it is built from the Services that call it."""
    assert part is not None, "the plane is still being built"
    return part


def _schedules(config: AwsConfig, clients: Clients) -> SchedulePort:
    if not config.schedule_target_arn or not config.scheduler_role_arn:
        return LocalSchedules()  # nothing can invoke on_schedule: schedule triggers are stored, never fired
    return EventBridgeSchedules(
        config.schedule_target_arn,
        config.scheduler_role_arn,
        group=config.schedule_group,
        region=config.region,
        client=clients.lazy("scheduler"),
    )


# -- which plane app.py serves ------------------------------------------------------------------------------------

_lock = threading.Lock()
_local: Services | None = None
_aws: AwsRuntime | None = None
_aws_enabled: bool | None = None


def serve_local(services: Services | None) -> None:
    """Install the Services of a local plane (`batchplane up`, tests); None forgets them."""
    global _local
    with _lock:
        _local = services


def configure_aws(rt: AwsRuntime | None) -> None:
    """Install the AWS runtime the handlers use (tests, the bench's moto deployment); None forgets it."""
    global _aws, _aws_enabled
    with _lock:
        _aws, _aws_enabled = rt, None


def aws_active() -> bool:
    """Whether this process serves the AWS plane: a runtime was installed, or BATCHPLANE_RUNTIME=aws (read once)."""
    global _aws_enabled
    if _aws is not None:
        return True
    if _aws_enabled is None:
        _aws_enabled = os.environ.get(ENV_RUNTIME, "").strip().lower() == "aws"
    return _aws_enabled


def aws_runtime() -> AwsRuntime:
    """The AWS plane of this Lambda container, built once from the environment."""
    global _aws
    if _aws is None:
        with _lock:
            if _aws is None:
                rt = build_aws(AwsConfig.from_environment())
                try:
                    rt.reindex_legacy()
                except Exception:  # the sweep moves them within a minute; serving must not wait for it
                    log.exception("re-indexing active jobs of an earlier version failed")
                _aws = rt
    return _aws


def services() -> Services:
    """The Services every API request runs on."""
    if aws_active():
        return aws_runtime().services
    local = _local
    return local if local is not None else aws_runtime().services
