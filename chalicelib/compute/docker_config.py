"""A job's containerProperties as the Docker engine's container configuration, the way ECS gives them to Batch jobs.

Each mapping follows the Batch ContainerProperties field it comes from (the AWS Batch API reference, and the ECS
task definition parameters those fields are passed to):

- `image`: used as is (ENTRYPOINT kept); `command` (Ref:: substituted, TaskSpec.command) replaces the image's CMD.
- environment: the job's variables, then what ECS sets in every container (`TaskSpec.ecs_environment`), then the
  reserved AWS_BATCH_* ones (they always win), then what the credential vendor grants.
- MEMORY: the hard memory limit (`--memory`, MiB). VCPU: on EC2/SPOT compute environments CPU shares, 1024 per vCPU
  (ECS's container `cpu` → CpuShares); on FARGATE/FARGATE_SPOT a hard quota (NanoCpus), as a Fargate task's size
  is. GPU: a device request for that many GPUs (`--gpus N`; needs the NVIDIA runtime, not testable here).
- `user`, `readonlyRootFilesystem`, `privileged`, `ulimits` (name, soft, hard), `linuxParameters`:
  `initProcessEnabled` → `--init`, `sharedMemorySize` (MiB) → `--shm-size`, `tmpfs` (size MiB, mountOptions) →
  `--tmpfs`, `devices` (permissions READ/WRITE/MKNOD → rwm), `maxSwap` (MiB; memory+swap is Docker's
  `--memory-swap`; 0 means no swap), `swappiness` (only with maxSwap, as ECS ignores it otherwise; 60 by default).
- `volumes` + `mountPoints`: a volume with `host.sourcePath` is a bind mount of that host path; one without a host
  is a Docker volume created for this attempt (ECS: "the Docker daemon assigns a host path for your data volume")
  and removed with its container. `readOnly` is honoured. EFS volumes cannot be mounted locally: refused.
- the container reaches the machine as `host.docker.internal` (`--add-host host.docker.internal:host-gateway`,
  engine 20.10+), so a job can call batchplane itself, a local S3, a database.

Whether privileged, devices and host paths are *allowed* is decided at SubmitJob (the operator's allow flags);
here they are only mapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker.types import DeviceRequest, Mount, Ulimit

from chalicelib.compute.port import TaskSpec

NANO = 1_000_000_000
CPU_SHARES_PER_VCPU = 1024
MIN_CPU_SHARES = 2  # the smallest value the kernel takes
HOST_GATEWAY = {"host.docker.internal": "host-gateway"}
PERMISSIONS = {"READ": "r", "WRITE": "w", "MKNOD": "m"}
DEFAULT_SWAPPINESS = 60
FULL_URI, RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"


class Refused(Exception):
    """The job asks for something this executor cannot give (the attempt fails with this reason)."""


@dataclass
class ContainerPlan:
    image: str
    command: list[str] | None
    environment: dict[str, str]
    user: str | None
    host_config: dict[str, Any]  # keyword arguments of docker-py's create_host_config
    volumes: list[str] = field(default_factory=list)  # Docker volumes made for this attempt (removed with it)


def resource(spec: TaskSpec, kind: str) -> str | None:
    for req in spec.container.get("resourceRequirements") or []:
        if req.get("type") == kind:
            return str(req.get("value"))
    return None


def plan(spec: TaskSpec, name: str, labels: dict[str, str], extra_env: dict[str, str] | None = None) -> ContainerPlan:
    """The container for one attempt; `name` (the container's) prefixes the Docker volumes it gets."""
    c = spec.container
    image = str(c.get("image") or "")
    if not image:
        raise Refused("CannotPullContainerError: the job has no image")
    env = {**spec.ecs_environment, **spec.environment, **(extra_env or {})}
    if FULL_URI in (extra_env or {}):  # the SDKs read a relative URI first: the job's own would shadow the grant's
        env.pop(RELATIVE_URI, None)
    # spec.environment holds the job's variables with AWS_BATCH_* applied last; ECS's own come before the job's,
    # so a job may still name its own AWS_REGION, but never its AWS_BATCH_* ones.
    env.update({k: v for k, v in spec.environment.items() if k.startswith("AWS_BATCH_")})
    host: dict[str, Any] = {"extra_hosts": dict(HOST_GATEWAY)}
    if spec.memory:
        host["mem_limit"] = f"{int(spec.memory)}m"
    if spec.vcpus:
        if spec.fargate:
            host["nano_cpus"] = int(spec.vcpus * NANO)
        else:
            host["cpu_shares"] = max(MIN_CPU_SHARES, int(spec.vcpus * CPU_SHARES_PER_VCPU))
    gpus = resource(spec, "GPU")
    if gpus and int(gpus) > 0:
        host["device_requests"] = [DeviceRequest(count=int(gpus), capabilities=[["gpu"]])]
    if c.get("readonlyRootFilesystem"):
        host["read_only"] = True
    if c.get("privileged"):
        host["privileged"] = True
    if c.get("ulimits"):
        host["ulimits"] = [
            Ulimit(name=u["name"], soft=int(u["softLimit"]), hard=int(u["hardLimit"])) for u in c["ulimits"]
        ]
    _linux(c.get("linuxParameters") or {}, spec, host)
    volumes = _mounts(c, name, labels, host)
    user = c.get("user")
    return ContainerPlan(image, list(spec.command) or None, env, str(user) if user else None, host, volumes)


def join_networks(p: ContainerPlan, spec: TaskSpec, credentials_network: str | None) -> str | None:
    """Put the container on its networks: the credentials network for a job with a role (`credentials_network`,
    ADR 0017), its multi-node job's network (compute/nodes.py). Returns a second network to connect it to before it
    starts (None when it has one)."""
    if credentials_network:
        p.host_config["network_mode"] = credentials_network
        # Without NET_RAW (on in Docker's default set) a container cannot forge its source address or ARP-spoof
        # its neighbours there, which the credentials server trusts to tell containers apart (ADR 0017).
        p.host_config["cap_drop"] = [*p.host_config.get("cap_drop", []), "NET_RAW"]
        # A node of a multi-node job with a role: on the credentials network (its requests to 169.254.170.2
        # leave from its address there, which the credentials server identifies it by) and on its job's network
        # (its peers reach it there: the main node's address is the one on that network, compute/nodes.py).
        return spec.network or None
    if spec.network:  # a node of a multi-node job: on its job's network (compute/nodes.py)
        p.host_config["network_mode"] = spec.network
    return None


def _linux(lp: dict[str, Any], spec: TaskSpec, host: dict[str, Any]) -> None:
    if lp.get("initProcessEnabled"):
        host["init"] = True
    if lp.get("sharedMemorySize"):
        host["shm_size"] = f"{int(lp['sharedMemorySize'])}m"
    if lp.get("tmpfs"):
        tmpfs = {}
        for t in lp["tmpfs"]:
            options = [f"size={int(t['size'])}m", *(t.get("mountOptions") or [])]
            tmpfs[str(t["containerPath"])] = ",".join(options)
        host["tmpfs"] = tmpfs
    if lp.get("devices"):
        devices = []
        for d in lp["devices"]:
            perms = "".join(PERMISSIONS[p] for p in d.get("permissions") or ["READ", "WRITE", "MKNOD"])
            devices.append(f"{d['hostPath']}:{d.get('containerPath') or d['hostPath']}:{perms}")
        host["devices"] = devices
    if lp.get("maxSwap") is not None and spec.memory:
        host["memswap_limit"] = f"{int(spec.memory) + int(lp['maxSwap'])}m"
        # ECS: 60 when maxSwap is given without swappiness; swappiness alone is ignored
        host["mem_swappiness"] = int(lp["swappiness"]) if lp.get("swappiness") is not None else DEFAULT_SWAPPINESS


def _mounts(c: dict[str, Any], name: str, labels: dict[str, str], host: dict[str, Any]) -> list[str]:
    volumes = {str(v.get("name")): v for v in c.get("volumes") or []}
    for v in volumes.values():
        if v.get("efsVolumeConfiguration"):
            raise Refused(
                f"CannotCreateContainerError: volume {v.get('name')!r} is an EFS volume; EFS cannot be mounted by "
                "the local runtime"
            )
    mounts, binds, made = [], [], []
    for mp in c.get("mountPoints") or []:
        source = str(mp.get("sourceVolume"))
        volume = volumes.get(source)
        if volume is None:
            raise Refused(f"CannotCreateContainerError: mount point {mp.get('containerPath')!r}: no volume {source!r}")
        read_only = bool(mp.get("readOnly"))
        path = (volume.get("host") or {}).get("sourcePath")
        if path:  # as a bind (-v), which creates a missing host directory as ECS does, unlike a bind mount
            binds.append(f"{path}:{mp['containerPath']}:{'ro' if read_only else 'rw'}")
        else:
            volume_name = f"{name}-{source}"
            if volume_name not in made:
                made.append(volume_name)
            mounts.append(
                Mount(str(mp["containerPath"]), volume_name, type="volume", read_only=read_only, labels=labels)
            )
    if mounts:
        host["mounts"] = mounts
    if binds:
        host["binds"] = binds
    return made
