"""One attempt of a multi-container job, run as a group of members (processes or Docker containers) the way ECS runs
a task of several containers (docs/adr/0028).

`GroupRun` is the coordinator, the same for every executor; the decisions are domain/ecs_task.py's:
1. prepare every member (pull and create a container, check a program exists): one that cannot be prepared fails the
   whole task before anything runs ("Task failed to start", as ECS fails a task whose image cannot be pulled);
2. start each member once its dependsOn conditions hold; one whose condition can no longer hold never starts;
3. when an essential member exits (or can never start), the task ends: the others are stopped (SIGTERM, then
   SIGKILL after the grace period); a stop or a timeout ends it the same way;
4. report TaskStarted after the first start, and TaskStopped once every member is done, with the job's exit code and
   reason (those of the essential container that ended the task) and every container's end.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from chalicelib.compute.port import TaskSpec
from chalicelib.domain import ecs_task
from chalicelib.domain.ecs_task import EXITED, NEVER, RUNNING, State, TaskContainer
from chalicelib.domain.jobs import TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

log = logging.getLogger("batchplane.launcher")

START_FAILED = "Task failed to start"
STOPPED_BEFORE_START = "Task stopped before the container started"


class Member(Protocol):
    """One container of the task, on some executor."""

    def prepare(self) -> str | None:
        """Make the member ready to start (pull, create); the reason it cannot be, else None."""
        ...

    def start(self) -> str | None:
        """Start it; the reason it could not start, else None."""
        ...

    def wait(self) -> tuple[int | None, str | None]:
        """Block until it ended (its output copied to its log stream): exit code and reason."""
        ...

    def stop(self, grace: float) -> None:
        """SIGTERM, SIGKILL after `grace` seconds (returns at once)."""
        ...

    def cleanup(self) -> None:
        """Release what prepare() made (containers, volumes); called once the task's end is reported."""
        ...


Report = Callable[[TaskStarted | TaskStopped], None]


def member_spec(spec: TaskSpec, c: TaskContainer) -> TaskSpec:
    """The attempt's spec narrowed to one of its containers: what a single-container executor needs to run it."""
    return TaskSpec(
        job_id=spec.job_id,
        attempt=spec.attempt,
        task_id=spec.task_id,
        command=c.command,
        environment=c.environment,
        log_stream=c.log_stream,
        vcpus=c.vcpus or spec.vcpus,
        memory=c.memory or spec.memory,
        compute_environment=spec.compute_environment,
        job_definition_name=spec.job_definition_name,
        job_definition_arn=spec.job_definition_arn,
        container={**spec.container, **c.container},
        tags=spec.tags,
        region=spec.region,
        compute_environment_type=spec.compute_environment_type,
    )


def grace_of(c: TaskContainer, default: float) -> float:
    """SIGTERM -> SIGKILL for a container: its stopTimeout (ECS's), else the server's grace period."""
    seconds = c.container.get("stopTimeout")
    return float(seconds) if isinstance(seconds, int) and not isinstance(seconds, bool) else default


class GroupRun:
    def __init__(
        self,
        spec: TaskSpec,
        members: Mapping[str, Member],
        report: Report,
        grace: float,
        *,
        setup: Callable[[], str | None] | None = None,
        teardown: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.setup = setup  # the task's own preparation (e.g. its network), before the members'
        self.teardown = teardown  # after the members' cleanup
        self.members = dict(members)
        self.report = report
        self.grace = grace
        self.states: dict[str, State] = {c.name: State() for c in spec.containers}
        self.by_name = {c.name: c for c in spec.containers}
        self._timers: list[threading.Timer] = []
        self.stop_reason: str | None = None
        self.timed_out = False
        self.lost = False  # the server shuts down: nothing more is reported
        self._events: queue.Queue[tuple[str, int | None, str | None] | str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._stopping = False
        self._started_reported = False

    def let_go(self) -> None:
        """The server shuts down: nothing more is reported, the coordinator returns and cleans nothing up."""
        self.lost = True
        self._events.put(None)

    # -- from other threads -------------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop the task; the control plane times attempts (docs/adr/0025) and stops a late one with the timeout
        reason, which is how the group knows it timed out."""
        with self._lock:
            if self.stop_reason is not None:
                return
            self.stop_reason = reason
            self.timed_out = reason == TIMEOUT_REASON
        self._events.put(None)  # wakes the coordinator

    # -- the coordinator (one thread per attempt) ---------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # an executor failed us: the attempt must not hang
            log.exception("the task group %s failed", self.spec.key)
            self._stop_running()
            self._finish(None, "CannotStartContainerError: the executor failed", START_FAILED)

    def _run(self) -> None:
        why = self.setup() if self.setup is not None else None
        if why is not None:  # the task's own failure (e.g. its role's credentials, docs/adr/0037): each container's
            self.states = {c.name: State(NEVER, reason=why) for c in self.spec.containers}
            self._finish(None, why, START_FAILED)
            return
        for c in self.spec.containers:
            why = self.members[c.name].prepare()
            if why is not None:
                for other in self.spec.containers:
                    self.states[other.name] = State(NEVER, reason=why if other.name == c.name else None)
                self._finish(None, why, START_FAILED)
                return
        self._coordinate()

    def resume(self, states: Mapping[str, State], ended_by: str | None = None) -> None:
        """After a restart (docs/adr/0028): carry on coordinating members prepared (and some started) by an earlier
        run of the server, in the states they were found in (the caller settled those that ended meanwhile).
        `ended_by`: the essential member known to have ended the task first, when the order the members ended in
        is known (a journal); else the first in definition order that ended."""
        try:
            self.states.update(states)
            started = [n for n, s in self.states.items() if s.status in (RUNNING, EXITED)]
            if started:
                self._started_reported = True
                if not self.lost:  # (ignored by the lifecycle when it saw the first one)
                    self.report(TaskStarted(self.spec.attempt))
            for name in started:
                if self.states[name].status == RUNNING:
                    threading.Thread(
                        target=self._wait, args=(name,), name=f"{self.spec.key}-{name}", daemon=True
                    ).start()
            self._coordinate(ended_by)
        except Exception:
            log.exception("the task group %s failed", self.spec.key)
            self._stop_running()
            self._finish(None, "CannotStartContainerError: the executor failed", START_FAILED)

    def _coordinate(self, ended_by: str | None = None) -> None:
        containers = self.spec.containers
        self._arm_start_timeouts()
        while True:
            if self.lost:
                return  # the server shuts down: its members are left as they are (the next start decides)
            if self.stop_reason is not None and not self._stopping:
                self._stopping = True
                self._stop_running()
            while not self._stopping and self._advance():
                pass  # until nothing more can start or be ruled out
            if ended_by is None and self.stop_reason is None:
                ended_by = ecs_task.ending(containers, self.states)
            if ended_by is not None and not self._stopping:
                self._stopping = True
                self._stop_running()
            if self._stopping:
                for name, s in self.states.items():
                    if s.status == ecs_task.WAITING:
                        self.states[name] = State(NEVER, reason=STOPPED_BEFORE_START)
            if ecs_task.all_done(self.states):
                break
            if (
                not self._stopping
                and not ecs_task.startable(containers, self.states)
                and not any(s.status == RUNNING for s in self.states.values())
            ):
                break  # nothing runs and nothing can start (cannot happen with a valid definition; never hang)
            event = self._events.get()
            if isinstance(event, str):  # a container's startTimeout passed: who still waits on it never starts
                for waiting, why in ecs_task.gave_up_on(containers, self.states, event).items():
                    self.states[waiting] = State(NEVER, reason=why)
            elif event is not None:
                name, code, reason = event
                self.states[name] = State(EXITED, code, reason)
        code, reason = ecs_task.job_exit(containers, self.states, ended_by)
        if ended_by is not None and self.states[ended_by].status == NEVER and not self._started_reported:
            self._finish(code, reason, START_FAILED)
        elif self.stop_reason is not None and ended_by is None:
            # As a single container's launcher reports a stop (the timeout's too): the stop's reason is the task's
            self._finish(code, reason, self.stop_reason)
        else:
            self._finish(code, reason, None)

    def _arm_start_timeouts(self) -> None:
        """ECS's startTimeout, on the container depended on: the time its dependents wait for its condition."""
        for c in self.spec.containers:
            seconds = c.container.get("startTimeout")
            if isinstance(seconds, int) and any(d == c.name for x in self.spec.containers for d, _ in x.depends_on):
                timer = threading.Timer(seconds, self._events.put, args=(c.name,))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()

    def _advance(self) -> bool:
        """Start what can start, rule out what never can; True when something changed."""
        containers, changed = self.spec.containers, False
        if ecs_task.ending(containers, self.states) is not None:
            return False  # (an essential container ended while the server was down: nothing more starts)
        for name in ecs_task.startable(containers, self.states):
            changed = True
            why = self.members[name].start()
            if why is not None:
                self.states[name] = State(NEVER, reason=why)
                continue
            self.states[name] = State(RUNNING)
            threading.Thread(target=self._wait, args=(name,), name=f"{self.spec.key}-{name}", daemon=True).start()
            if not self._started_reported:
                self._started_reported = True
                if not self.lost:
                    self.report(TaskStarted(self.spec.attempt))
        for name, why in ecs_task.never_startable(containers, self.states).items():
            changed = True
            self.states[name] = State(NEVER, reason=why)
        if ecs_task.ending(containers, self.states) is not None:
            return False  # an essential container ended the task: nothing more starts
        return changed

    def _wait(self, name: str) -> None:
        try:
            code, reason = self.members[name].wait()
        except Exception as e:  # the engine lost it: it ended without a known exit
            log.exception("waiting for %s of %s failed", name, self.spec.key)
            code, reason = None, f"CannotInspectContainerError: {e}"[:255]
        self._events.put((name, code, reason))

    def _stop_running(self) -> None:
        for name, s in self.states.items():
            if s.status == RUNNING:
                try:
                    self.members[name].stop(grace_of(self.by_name[name], self.grace))
                except Exception:
                    log.exception("stopping %s of %s failed", name, self.spec.key)

    def _finish(self, code: int | None, reason: str | None, status_reason: str | None) -> None:
        event = TaskStopped(
            self.spec.attempt,
            code,
            reason=reason,
            status_reason=status_reason,
            timed_out=self.timed_out,
            containers=ecs_task.results(self.spec.containers, self.states),
        )
        for timer in self._timers:
            timer.cancel()
        if self.lost:
            return  # the server shuts down: what its members are is the next start's to decide
        self.report(event)
        for member in self.members.values():
            try:
                member.cleanup()
            except Exception:
                log.exception("cleaning up after %s failed", self.spec.key)
        if self.teardown is not None:
            try:
                self.teardown()
            except Exception:
                log.exception("cleaning up after %s failed", self.spec.key)


def task_label(spec: TaskSpec) -> str:
    """What a restart needs to carry on coordinating the task or settling its end, one line of JSON: the Docker
    holder's label (compute/docker_task.py), the process executor's journal (compute/local_group.py)."""
    return json.dumps(
        {
            "taskId": spec.task_id,
            "jobDefinitionArn": spec.job_definition_arn,
            "region": spec.region,
            "containers": [
                [c.name, c.essential, [list(d) for d in c.depends_on], c.log_stream] for c in spec.containers
            ],
        },
        separators=(",", ":"),
    )


def spec_of(job_id: str, attempt: int, label: str | None) -> TaskSpec | None:
    """The spec of a recovered task from its `task_label` (None without a readable one): enough to coordinate its
    members and report its end, not to create them."""
    try:
        t = json.loads(label or "")
        containers = tuple(
            TaskContainer(str(n), bool(e), tuple((str(a), str(b)) for a, b in d), [], {}, str(ls), 0, 0)
            for n, e, d, ls in t["containers"]
        )
        return TaskSpec(
            job_id=job_id,
            attempt=attempt,
            task_id=str(t["taskId"]),
            command=[],
            environment={},
            log_stream="",
            vcpus=0,
            memory=0,
            compute_environment="",
            job_definition_arn=str(t["jobDefinitionArn"]),
            region=str(t["region"]),
            containers=containers,
        )
    except (ValueError, TypeError, KeyError):
        return None
