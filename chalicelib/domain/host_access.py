"""No root through the API by default: what a job may reach on the host it runs on. Pure.

With a container executor, whoever can call SubmitJob could otherwise become root on the machine: a privileged
container, a host device, or a bind mount of `/` is all it takes. So the local runtime refuses, at SubmitJob (and
when a trigger submits), a job whose effective container (its definition's `containerProperties` with the submit's
`containerOverrides` applied) asks for

- `privileged: true` or any `linuxParameters.devices` entry, unless the operator started the server with
  `batchplane up --allow-privileged`;
- a volume with a host `sourcePath`, unless that path, symlinks resolved, lies under a prefix given with
  `batchplane up --allow-host-path PREFIX` (repeatable). Paths are compared by components, so `/data` allows
  `/data/x` but not `/database`; a relative `sourcePath` names no host path and is never allowed. Symlinks are
  resolved when the job is submitted and Docker resolves them again when it mounts: whoever can replace a folder
  under an allowed prefix with a symlink in between can redirect the mount, so allow only folders that the API's
  callers cannot otherwise write to.

SubmitJob's `containerOverrides` cannot carry any of these (botocore's ContainerOverrides shape has only `command`,
`environment`, `resourceRequirements`, `vcpus`, `memory`, `instanceType`), so in practice the job definition is what
is checked; the check still runs on the effective container, so a future override cannot slip past it.

Registering such a definition stays allowed, as on AWS: the refusal is about running it here. The check is at
submission only: a job accepted while the flags were given still runs after a restart without them (the operator
allowed it when it was accepted; nothing is re-judged at dispatch).

The AWS runtime does not apply this rule (`Settings.host_access` is None there): jobs run on ECS capacity, not on
a host that batchplane's operator shares with the API's callers; ECS and IAM decide what a task may do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from chalicelib.domain.errors import InvalidRequest

ALLOW_PRIVILEGED_FLAG = "batchplane up --allow-privileged"
ALLOW_HOST_PATH_FLAG = "batchplane up --allow-host-path PREFIX"


@dataclass(frozen=True)
class HostAccess:
    """The operator's allowances. `host_path_prefixes` are absolute paths with their symlinks already resolved
    (the runtime resolves them once, at start)."""

    allow_privileged: bool = False
    host_path_prefixes: tuple[str, ...] = ()

    def allows_path(self, resolved: str) -> bool:
        """Is `resolved` (absolute, symlinks resolved) at or under one of the prefixes, component by component?"""
        path = PurePosixPath(resolved)
        return path.is_absolute() and any(path.is_relative_to(PurePosixPath(p)) for p in self.host_path_prefixes)


def check(
    container: Mapping[str, Any],
    policy: HostAccess,
    resolve: Callable[[str], str],
    *,
    field: str = "containerProperties",
    what: str = "this job",
) -> None:
    """Raise InvalidRequest naming the field and the flag when `container` asks for more than `policy` allows.

    `resolve` maps an absolute host path to its real path (os.path.realpath where the host is this machine)."""
    if not policy.allow_privileged:
        if container.get("privileged") is True:
            raise _refused(f"{field}.privileged", f"{what} asks for a privileged container", ALLOW_PRIVILEGED_FLAG)
        for key in ("ipcMode", "pidMode"):  # a multi-container task's (docs/adr/0028): the host's namespaces
            if container.get(key) == "host":
                raise _refused(
                    f"{field}.{key}", f"{what} asks for the host's {key[:3]} namespace", ALLOW_PRIVILEGED_FLAG
                )
        devices = (container.get("linuxParameters") or {}).get("devices") or []
        if devices:
            raise _refused(
                f"{field}.linuxParameters.devices",
                f"{what} asks for host device {devices[0].get('hostPath', '?')!r}",
                ALLOW_PRIVILEGED_FLAG,
            )
    for i, source in _host_sources(container.get("volumes") or []):
        allowed = source.startswith("/") and policy.allows_path(resolve(source))
        if not allowed:
            where = "only paths under " + ", ".join(policy.host_path_prefixes) if policy.host_path_prefixes else "none"
            raise _refused(
                f"{field}.volumes[{i}].host.sourcePath",
                f"{what} mounts host path {source!r}, and this server allows host paths: {where}",
                ALLOW_HOST_PATH_FLAG,
            )


def _host_sources(volumes: Iterable[Mapping[str, Any]]) -> Iterable[tuple[int, str]]:
    for i, volume in enumerate(volumes):
        source = (volume.get("host") or {}).get("sourcePath")
        if source:  # `host: {}` (or an empty path) is an engine-managed volume, as the launcher makes it
            yield i, str(source)


def _refused(field: str, why: str, flag: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {why}; refused unless the server's operator allows it with `{flag}`")
