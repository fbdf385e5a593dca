"""Multi-container jobs (`ecsProperties`): the rules of one ECS task with several containers (docs/adr/0028). Pure.

- Register: one `taskProperties` entry (AWS: "currently limited to one task element"), 1-10 containers with unique
  names, at least one essential (essential is true when omitted), `dependsOn` naming other containers of the task
  with START, COMPLETE or SUCCESS and no cycle; COMPLETE and SUCCESS may not name an essential container (ECS's
  ContainerDependency rule). HEALTHY is refused: Batch's TaskContainerProperties has no healthCheck, so a container
  could never become healthy.
- Submit: `ecsPropertiesOverride.taskProperties[0].containers[]` overrides command, environment (merged by name) and
  resourceRequirements (merged by type) of the container it names.
- Resources: the task reserves the sum of its containers' VCPU and MEMORY.
- Run: a container starts once every dependency's condition holds (START: it started; COMPLETE: it exited; SUCCESS:
  it exited 0); one whose condition can no longer hold never starts. The task stops (the others are stopped) when an
  essential container exits or can never start; the job's exit code and reason are those of the essential container
  that ended the task, so the job succeeds exactly when that container exited 0.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain import platform, validation
from chalicelib.domain.validation import fail

MAX_CONTAINERS = 10  # ECS: a task definition holds at most 10 containers
CONDITIONS = ("START", "COMPLETE", "SUCCESS")
IPC_MODES = ("host", "task", "none")
PID_MODES = ("host", "task")
# Task-level EcsTaskProperties a launcher needs, carried in every TaskContainer.container (as `volumes` is)
TASK_LEVEL = ("ipcMode", "pidMode", "ephemeralStorage", "runtimePlatform")
DEFAULT_NAME = "default"  # a lone unnamed container (its log stream is then `<jd>/default/<task id>`, as usual)
NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
WAITING, RUNNING, EXITED, NEVER = "WAITING", "RUNNING", "EXITED", "NEVER"


@dataclass(frozen=True)
class TaskContainer:
    """One container of a multi-container attempt, as a launcher runs it (built by the Reactor)."""

    name: str
    essential: bool
    depends_on: tuple[tuple[str, str], ...]  # (container name, condition)
    command: list[str]  # Ref:: parameters substituted
    environment: dict[str, str]  # the container's variables and the reserved AWS_BATCH_* ones
    log_stream: str  # <jd>/<name>/<task id>
    vcpus: float
    memory: int
    # The container's TaskContainerProperties (overrides applied), wire shape, plus the task's `volumes` and
    # TASK_LEVEL: what a container runtime needs beyond the command and environment (image, mountPoints, user, ...).
    container: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    """What a container of a running task has done so far."""

    status: str = WAITING  # WAITING | RUNNING | EXITED | NEVER (did not start and never will)
    exit_code: int | None = None
    reason: str | None = None


# -- register and submit ---------------------------------------------------------------------------------------


def containers_of(ecs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(((ecs.get("taskProperties") or [{}])[0]).get("containers") or [])


def name_of(c: Mapping[str, Any]) -> str:
    return str(c.get("name") or DEFAULT_NAME)


def is_essential(c: Mapping[str, Any]) -> bool:
    return c.get("essential") is not False


def validate_properties(ecs: Mapping[str, Any], *, fargate: bool, field: str = "ecsProperties") -> None:
    tasks = ecs.get("taskProperties") or []
    if len(tasks) != 1:
        raise fail(f"{field}.taskProperties", f"must hold exactly one task; got {len(tasks)}")
    base = f"{field}.taskProperties[0]"
    containers = tasks[0].get("containers") or []
    if not 1 <= len(containers) <= MAX_CONTAINERS:
        raise fail(f"{base}.containers", f"must hold 1-{MAX_CONTAINERS} containers; got {len(containers)}")
    names: dict[str, int] = {}
    for i, c in enumerate(containers):
        cfield = f"{base}.containers[{i}]"
        if c.get("name") is None and len(containers) > 1:
            raise fail(f"{cfield}.name", "is required when the task has more than one container")
        name = name_of(c)
        if not NAME.fullmatch(name):
            raise fail(f"{cfield}.name", "must be 1-255 letters, numbers, hyphens and underscores")
        if name in names:
            raise fail(f"{cfield}.name", f"{name!r} is the name of containers[{names[name]}] already")
        names[name] = i
        _container(c, cfield, fargate=fargate)
    if not any(is_essential(c) for c in containers):
        raise fail(f"{base}.containers", "must hold at least one essential container")
    by_name = {name_of(c): c for c in containers}
    for i, c in enumerate(containers):
        for j, dep in enumerate(c.get("dependsOn") or []):
            dfield = f"{base}.containers[{i}].dependsOn[{j}]"
            target, condition = dep.get("containerName"), dep.get("condition")
            if target not in by_name:
                raise fail(f"{dfield}.containerName", f"{target!r} is not a container of this task")
            if target == name_of(c):
                raise fail(f"{dfield}.containerName", "a container cannot depend on itself")
            if condition not in CONDITIONS:
                raise fail(
                    f"{dfield}.condition",
                    f"must be one of {', '.join(CONDITIONS)} (HEALTHY needs a healthCheck, "
                    "which batchplane's task containers do not have)",
                )
            if condition in ("COMPLETE", "SUCCESS") and is_essential(by_name[target]):
                raise fail(f"{dfield}.condition", f"{condition} cannot be set on an essential container ({target})")
    cycle = _cycle({name_of(c): [d["containerName"] for d in c.get("dependsOn") or []] for c in containers})
    if cycle:
        raise fail(f"{base}.containers", f"dependsOn forms a cycle: {' -> '.join(cycle)}")
    _task_modes(tasks[0], base, fargate=fargate)
    total_vcpus, total_memory = task_resources(containers, field=f"{base}.containers")
    if fargate:
        platform.fargate_size(total_vcpus, total_memory, f"{base}.containers")


def _task_modes(task: Mapping[str, Any], base: str, *, fargate: bool) -> None:
    """ECS's ipcMode (host, task, none) and pidMode (host, task); Fargate supports no ipcMode and pidMode task only."""
    for key, allowed in (("ipcMode", IPC_MODES), ("pidMode", PID_MODES)):
        mode = task.get(key)
        if mode is None:
            continue
        if mode not in allowed:
            raise fail(f"{base}.{key}", f"must be one of {', '.join(allowed)}")
        if fargate and (key == "ipcMode" or mode != "task"):
            raise fail(f"{base}.{key}", f"{mode} is not supported on Fargate" + (" (only task)" * (key == "pidMode")))


def _container(c: Mapping[str, Any], field: str, *, fargate: bool) -> None:
    for key in ("startTimeout", "stopTimeout"):  # seconds, in ECS's range
        value = c.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 120):
            raise fail(f"{field}.{key}", "must be a whole number of seconds from 2 to 120")
    if not c.get("image"):
        raise fail(f"{field}.image", "is required")
    if len(c["image"]) > 255:
        raise fail(f"{field}.image", "must be at most 255 characters")
    if c.get("command") is not None:
        validation.command(c["command"], f"{field}.command")
    validation.environment(c.get("environment") or [], f"{field}.environment")
    platform.resource_requirements(
        c.get("resourceRequirements") or [], f"{field}.resourceRequirements", platform.FARGATE if fargate else None
    )
    validation.linux_parameters(c.get("linuxParameters") or {}, f"{field}.linuxParameters")


def _cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """A dependency cycle as a path (first name repeated at the end), or [] when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for nxt in graph.get(node, ()):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return []

    for start in graph:
        found = visit(start, [])
        if found:
            return found
    return []


def task_resources(containers: Iterable[Mapping[str, Any]], field: str = "containers") -> tuple[float, int]:
    """The task's vCPUs and MiB: the sum of its containers' (1 vCPU and 2048 MiB when none gives any)."""
    vcpus, memory = 0.0, 0
    for c in containers:
        values = platform.resource_requirements(
            c.get("resourceRequirements") or [], f"{field}.resourceRequirements", None
        )
        vcpus += float(values.get("VCPU", 0))
        memory += int(values.get("MEMORY", 0))
    return (vcpus or 1.0), (memory or 2048)


def container_resources(c: Mapping[str, Any]) -> tuple[float, int]:
    values = platform.resource_requirements(c.get("resourceRequirements") or [], "resourceRequirements", None)
    return float(values.get("VCPU", 0)), int(values.get("MEMORY", 0))


def validate_override(override: Mapping[str, Any], field: str = "ecsPropertiesOverride") -> None:
    tasks = override.get("taskProperties") or []
    if len(tasks) > 1:
        raise fail(f"{field}.taskProperties", f"must hold at most one task; got {len(tasks)}")
    for i, c in enumerate((tasks[0].get("containers") or []) if tasks else []):
        cfield = f"{field}.taskProperties[0].containers[{i}]"
        if c.get("command") is not None:
            validation.command(c["command"], f"{cfield}.command")
        validation.environment(c.get("environment") or [], f"{cfield}.environment")
        platform.resource_requirements(c.get("resourceRequirements") or [], f"{cfield}.resourceRequirements", None)


def effective_properties(ecs: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The definition's ecsProperties with SubmitJob's ecsPropertiesOverride applied; each container named."""
    result: dict[str, Any] = copy.deepcopy(dict(ecs))
    task = result["taskProperties"][0]
    by_name = {name_of(c): c for c in task["containers"]}
    for c in task["containers"]:
        c["name"] = name_of(c)
    tasks = override.get("taskProperties") or []
    for i, o in enumerate((tasks[0].get("containers") or []) if tasks else []):
        target = by_name.get(str(o.get("name") or (DEFAULT_NAME if len(by_name) == 1 else "")))
        if target is None:
            raise fail(
                f"ecsPropertiesOverride.taskProperties[0].containers[{i}].name",
                f"{o.get('name')!r} is not a container of the job definition"
                if o.get("name")
                else "is required when the job definition has more than one container",
            )
        if o.get("command") is not None:
            target["command"] = list(o["command"])
        if o.get("environment"):
            env = {e["name"]: e.get("value", "") for e in target.get("environment") or [] if e.get("name")}
            env.update({e["name"]: e.get("value", "") for e in o["environment"] if e.get("name")})
            target["environment"] = [{"name": k, "value": v} for k, v in env.items()]
        if o.get("resourceRequirements"):
            by_type = {r["type"]: r for r in target.get("resourceRequirements") or []}
            by_type.update({r["type"]: r for r in o["resourceRequirements"]})
            target["resourceRequirements"] = list(by_type.values())
    return result


def log_stream(attempt_stream: str, name: str) -> str:
    """A container's log stream from the attempt's `<jd>/default/<task id>`: `<jd>/<name>/<task id>`."""
    head, sep, task = attempt_stream.rpartition("/")
    prefix, _, _ = head.rpartition("/")
    return f"{prefix}/{name}/{task}" if sep and prefix else attempt_stream


# -- run --------------------------------------------------------------------------------------------------------


def _met(condition: str, dep: State) -> bool:
    if condition == "START":
        return dep.status in (RUNNING, EXITED)
    return dep.status == EXITED and (condition == "COMPLETE" or dep.exit_code == 0)


def _impossible(condition: str, dep: State) -> bool:
    return dep.status == NEVER or (condition == "SUCCESS" and dep.status == EXITED and dep.exit_code != 0)


def startable(containers: Sequence[TaskContainer], states: Mapping[str, State]) -> list[str]:
    """Waiting containers whose every dependency condition holds, in definition order."""
    return [
        c.name
        for c in containers
        if states[c.name].status == WAITING and all(_met(cond, states[d]) for d, cond in c.depends_on)
    ]


def never_startable(containers: Sequence[TaskContainer], states: Mapping[str, State]) -> dict[str, str]:
    """Waiting containers a dependency condition can no longer be met for, with the reason."""
    found = {}
    for c in containers:
        if states[c.name].status != WAITING:
            continue
        for d, cond in c.depends_on:
            if _impossible(cond, states[d]):
                what = "never started" if states[d].status == NEVER else f"exited with {states[d].exit_code}"
                found[c.name] = f"DependencyViolation: container {d} {what}; condition {cond} cannot be met"
                break
    return found


def gave_up_on(containers: Sequence[TaskContainer], states: Mapping[str, State], dep: str) -> dict[str, str]:
    """`dep`'s startTimeout passed: the waiting containers whose condition on it does not hold yet give up (ECS: "it
    doesn't reach the desired status within that time then containerA gives up and not start"), with the reason."""
    found = {}
    for c in containers:
        if states[c.name].status != WAITING:
            continue
        for d, cond in c.depends_on:
            if d == dep and not _met(cond, states[d]):
                found[c.name] = f"DependencyViolation: container {d} did not reach {cond} within its startTimeout"
                break
    return found


def ending(containers: Sequence[TaskContainer], states: Mapping[str, State]) -> str | None:
    """The essential container that ends the task now (exited, or can never start), else None."""
    for c in containers:
        if c.essential and states[c.name].status in (EXITED, NEVER):
            return c.name
    return None


def all_done(states: Mapping[str, State]) -> bool:
    return all(s.status in (EXITED, NEVER) for s in states.values())


def results(containers: Sequence[TaskContainer], states: Mapping[str, State]) -> tuple[dict[str, Any], ...]:
    """Each container's end as stored on the attempt: {"name", "exitCode"?, "reason"?}."""
    out = []
    for c in containers:
        s = states[c.name]
        entry: dict[str, Any] = {"name": c.name}
        if s.exit_code is not None:
            entry["exitCode"] = s.exit_code
        if s.reason:
            entry["reason"] = s.reason[:255]
        out.append(entry)
    return tuple(out)


def job_exit(
    containers: Sequence[TaskContainer], states: Mapping[str, State], ended_by: str | None
) -> tuple[int | None, str | None]:
    """The job's exit code and reason: those of the essential container that ended the task; when the task ended
    otherwise (stopped, timed out), of the first essential container in definition order."""
    name = ended_by or next((c.name for c in containers if c.essential), None)
    if name is None:
        return None, None
    s = states[name]
    return s.exit_code, s.reason


def task_containers(
    ecs: Mapping[str, Any], reserved: Mapping[str, str], parameters: Mapping[str, str], attempt_stream: str
) -> tuple[TaskContainer, ...]:
    """The containers a launcher runs for one attempt. `reserved`: the AWS_BATCH_* variables (they always win)."""
    task = ecs["taskProperties"][0]
    out = []
    for c in task["containers"]:
        name = name_of(c)
        env = {e["name"]: str(e.get("value", "")) for e in c.get("environment") or [] if e.get("name")}
        vcpus, memory = container_resources(c)
        out.append(
            TaskContainer(
                name=name,
                essential=is_essential(c),
                depends_on=tuple((d["containerName"], d["condition"]) for d in c.get("dependsOn") or []),
                command=[parameters.get(p[5:], p) if p.startswith("Ref::") else p for p in c.get("command") or []],
                environment={**env, **reserved},
                log_stream=log_stream(attempt_stream, name),
                vcpus=vcpus,
                memory=memory,
                container={**c, "volumes": task.get("volumes") or [], **{k: task[k] for k in TASK_LEVEL if k in task}},
            )
        )
    return tuple(out)


def task_role(ecs: Mapping[str, Any]) -> dict[str, Any]:
    """The task-level roles, in containerProperties' names (what the credential vendor and ECS read)."""
    task = ecs["taskProperties"][0]
    roles = {"jobRoleArn": task.get("taskRoleArn"), "executionRoleArn": task.get("executionRoleArn")}
    return {k: v for k, v in roles.items() if v}


STOPPED_BY_SIGNAL = (137, 143)  # SIGKILL, SIGTERM: how a container the task's end stopped usually exits


def exit_of_stopped_task(ecs: Mapping[str, Any], ends: Sequence[Mapping[str, Any]]) -> tuple[int | None, str | None]:
    """The job's exit from an ECS task's STOPPED containers, when the order they exited in is unknown (an ECS task
    state change lists each container's exit code, not when it exited): the first essential container, in definition
    order, that exited by itself (not 137/143, what the others get when ECS stops them), else the first essential
    container with an exit code, else the first essential container's reason."""
    essential = [name_of(c) for c in containers_of(ecs) if is_essential(c)]
    by_name = {str(e.get("name")): e for e in ends}
    found = [by_name[n] for n in essential if n in by_name]
    with_code = [e for e in found if isinstance(e.get("exitCode"), int)]
    chosen = next((e for e in with_code if e["exitCode"] not in STOPPED_BY_SIGNAL), None)
    chosen = chosen or (with_code[0] if with_code else (found[0] if found else None))
    if chosen is None:
        return None, None
    code = chosen.get("exitCode")
    return (code if isinstance(code, int) else None), chosen.get("reason")
