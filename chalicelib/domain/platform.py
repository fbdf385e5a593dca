"""Platform and resource rules: where a job can run (EC2 or FARGATE) and what it may ask for. Pure.

AWS applies them at three points, and so does batchplane (docs/adr/0022-platform-rules.md):
- RegisterJobDefinition: a definition without `platformCapabilities` is EC2. A FARGATE one needs `executionRoleArn`,
  both VCPU and MEMORY in `resourceRequirements` as one of Fargate's task sizes, and no GPU (AWS Batch User Guide,
  "Job definitions on Fargate"; botocore's ResourceRequirement.value documents the size table); none of the members
  Fargate does not run: privileged, ulimits, instanceType, linuxParameters devices/maxSwap/sharedMemorySize/
  swappiness/tmpfs, a volume's host sourcePath, a log driver other than awslogs or splunk, an EFS volume before
  platform version 1.4.0.
- SubmitJob: a job whose platform none of its queue's compute environments offers is refused with AWS's own
  message ("Job Queue is attached to Compute Environment that can not run Jobs with capability EC2", the
  ClientException users report from SubmitJob); containerOverrides are held to the same resource rules, and a
  FARGATE definition stored before these rules is held to them too.
- Dispatch: a queue's compute environments can change after a job was queued; a job none of them can run waits
  with a MISCONFIGURATION reason (domain/scheduling.py) instead of running on the wrong platform.

Every resource value is a plain decimal string: "inf", "nan", "1e400", "0x10" or "1_000" are refused (Python's
`float` would accept most of them, and a non-finite size broke SubmitJob and the scheduler).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.model import FARGATE_TYPES

EC2 = "EC2"
FARGATE = "FARGATE"

# Fargate task sizes: vCPU -> the MEMORY values (MiB) allowed with it (botocore ResourceRequirement.value; 32 vCPU
# is ECS's larger size, kept for compatibility with definitions batchplane accepted before).
FARGATE_MEMORY: dict[float, list[int]] = {
    0.25: [512, 1024, 2048],
    0.5: list(range(1024, 4097, 1024)),
    1: list(range(2048, 8193, 1024)),
    2: list(range(4096, 16385, 1024)),
    4: list(range(8192, 30721, 1024)),
    8: list(range(16384, 61441, 4096)),
    16: list(range(32768, 122881, 8192)),
    32: [61440, 122880, 249856],
}
# A resource value: digits, optionally a fraction; at most 10 integer digits (2**31 MiB is 2 PiB of memory).
DECIMAL = re.compile(r"[0-9]{1,10}(\.[0-9]{1,6})?")
MIN_MEMORY_MIB = 4  # "You must specify at least 4 MiB of memory for a job"
MAX_RESOURCE_VALUE = 2**31 - 1
WHOLE_TYPES = ("MEMORY", "GPU")


def _fail(field: str, rule: str) -> InvalidRequest:
    return InvalidRequest(f"{field} {rule}")


def platform_of(capabilities: Iterable[str] | None) -> str:
    """A job definition's platform: FARGATE if it says so, else EC2 (AWS's default when none is given)."""
    return FARGATE if FARGATE in (capabilities or ()) else EC2


def ce_platform(resource_type: str | None) -> str:
    """The platform a compute environment runs: FARGATE / FARGATE_SPOT, else EC2 (EC2, SPOT and unmanaged)."""
    return FARGATE if resource_type in FARGATE_TYPES else EC2


def resource_requirements(reqs: Iterable[Mapping[str, Any]], field: str, platform: str | None) -> dict[str, float]:
    """Check resourceRequirements' values; returns them by type. `platform` None: not known yet (an override)."""
    values: dict[str, float] = {}
    for i, r in enumerate(reqs):
        kind, raw = r["type"], r["value"]
        vfield = f"{field}[{i}].value"
        if kind in values:
            raise _fail(f"{field}[{i}].type", f"{kind} is given more than once")
        if not DECIMAL.fullmatch(raw):
            raise _fail(vfield, f"must be a decimal number for {kind} (like 1, 0.25 or 2048); got {raw!r}")
        value = float(raw)
        if kind in WHOLE_TYPES and not value.is_integer():
            raise _fail(vfield, f"must be a whole number for {kind}; got {raw!r}")
        if value > MAX_RESOURCE_VALUE:
            raise _fail(vfield, f"must be at most {MAX_RESOURCE_VALUE} for {kind}; got {raw!r}")
        if kind == "MEMORY" and value < MIN_MEMORY_MIB:
            raise _fail(vfield, f"must be at least {MIN_MEMORY_MIB} MiB for MEMORY; got {raw!r}")
        if kind != "MEMORY" and value <= 0:
            raise _fail(vfield, f"must be greater than 0 for {kind}; got {raw!r}")
        if platform == FARGATE and kind == "GPU":
            raise _fail(f"{field}[{i}].type", "GPU resources aren't supported for jobs that run on Fargate resources")
        values[kind] = value
    return values


def fargate_size(vcpus: float, memory: float, field: str) -> None:
    allowed = FARGATE_MEMORY.get(vcpus)
    if allowed is None:
        raise _fail(f"{field} VCPU", f"must be one of {', '.join(f'{v:g}' for v in FARGATE_MEMORY)} on Fargate")
    if memory not in allowed:
        raise _fail(
            f"{field} MEMORY",
            f"{memory:g} is not valid with {vcpus:g} vCPU on Fargate; use one of {', '.join(map(str, allowed))}",
        )


# What Fargate does not run (AWS Batch User Guide "Job definitions on Fargate"; botocore's documentation of
# ContainerProperties, LinuxParameters, Volume, Host and LogConfiguration says the same, member by member).
FARGATE_NOT_APPLICABLE = ("instanceType", "ulimits")
FARGATE_LINUX_NOT_APPLICABLE = ("devices", "maxSwap", "sharedMemorySize", "swappiness", "tmpfs")
FARGATE_LOG_DRIVERS = ("awslogs", "splunk")
FARGATE_EFS_MIN_VERSION = (1, 4, 0)
NOT_ON_FARGATE = "isn't applicable to jobs that run on Fargate resources"


def _given(value: Any) -> bool:
    """An empty list or object is "not provided" (DescribeJobDefinitions echoes `ulimits: []`, `tmpfs: []`, and a
    described definition is often registered again); a number, even 0, is provided."""
    return value is not None and value != [] and value != {}


def fargate_properties(c: Mapping[str, Any], field: str) -> None:
    """The container members Fargate does not run: refused by name (registration, and SubmitJob for a definition
    stored before batchplane applied these rules)."""
    if c.get("privileged"):
        raise _fail(f"{field}.privileged", "must be false or omitted for jobs that run on Fargate resources")
    for key in FARGATE_NOT_APPLICABLE:
        if _given(c.get(key)):
            raise _fail(f"{field}.{key}", NOT_ON_FARGATE)
    lp = c.get("linuxParameters") or {}
    for key in FARGATE_LINUX_NOT_APPLICABLE:
        if _given(lp.get(key)):
            raise _fail(f"{field}.linuxParameters.{key}", NOT_ON_FARGATE)
    platform_version = (c.get("fargatePlatformConfiguration") or {}).get("platformVersion") or "LATEST"
    for i, volume in enumerate(c.get("volumes") or []):
        if (volume.get("host") or {}).get("sourcePath"):
            raise _fail(
                f"{field}.volumes[{i}].host.sourcePath",
                f"{NOT_ON_FARGATE}: Fargate mounts only volumes without a host path, and EFS volumes",
            )
        if volume.get("efsVolumeConfiguration") is not None and not _version_at_least(platform_version):
            raise _fail(
                f"{field}.volumes[{i}].efsVolumeConfiguration",
                f"needs fargatePlatformConfiguration.platformVersion 1.4.0 or later on Fargate; got {platform_version}",
            )
    driver = (c.get("logConfiguration") or {}).get("logDriver")
    if driver is not None and driver not in FARGATE_LOG_DRIVERS:
        raise _fail(
            f"{field}.logConfiguration.logDriver",
            f"must be one of {', '.join(FARGATE_LOG_DRIVERS)} for jobs that run on Fargate resources; got {driver!r}",
        )


def _version_at_least(version: str) -> bool:
    """A Fargate platform version ("LATEST", "1.4.0") is at least 1.4.0; an unparsable one is left to ECS."""
    parts = version.split(".")
    if version == "LATEST" or not all(p.isdigit() for p in parts):
        return True
    return tuple(int(p) for p in parts) >= FARGATE_EFS_MIN_VERSION


def fargate_container(c: Mapping[str, Any], field: str, values: Mapping[str, float]) -> None:
    """A FARGATE job definition's containerProperties (resourceRequirements already checked into `values`)."""
    fargate_properties(c, field)
    if not c.get("executionRoleArn"):
        raise _fail(f"{field}.executionRoleArn", "is required for jobs that run on Fargate resources")
    for legacy in ("vcpus", "memory"):
        if c.get(legacy) is not None:
            raise _fail(f"{field}.{legacy}", "is not supported on Fargate; specify it in resourceRequirements")
    for kind in ("VCPU", "MEMORY"):
        if kind not in values:
            raise _fail(f"{field}.resourceRequirements", f"must specify {kind} for jobs that run on Fargate resources")
    fargate_size(values["VCPU"], values["MEMORY"], f"{field}.resourceRequirements")


def overrides(o: Mapping[str, Any], platform: str) -> None:
    """SubmitJob's containerOverrides under the job definition's platform."""
    field = "containerOverrides"
    resource_requirements(o.get("resourceRequirements") or [], f"{field}.resourceRequirements", platform)
    if platform == FARGATE:
        for legacy in ("vcpus", "memory"):
            if o.get(legacy) is not None:
                raise _fail(f"{field}.{legacy}", "is not supported on Fargate; override resourceRequirements")


def effective_resources(container: Mapping[str, Any], platform: str) -> None:
    """The job's container after overrides: on Fargate still one task size, and nothing Fargate does not run (a
    definition registered before batchplane applied these rules is refused here, not run with a host path)."""
    if platform != FARGATE:
        return
    fargate_properties(container, "jobDefinition containerProperties")
    values = {r["type"]: float(r["value"]) for r in container.get("resourceRequirements") or []}
    fargate_size(values.get("VCPU", 0.0), values.get("MEMORY", 0.0), "containerOverrides.resourceRequirements")


def queue_runs(platform: str, ce_platforms: Iterable[str]) -> None:
    """SubmitJob: some compute environment of the queue must run `platform` (a queue with none is left to wait)."""
    kinds = set(ce_platforms)
    if kinds and platform not in kinds:
        # AWS's own words, as SubmitJob answers them (users quote them verbatim); prefixed with the field.
        rule = f"Job Queue is attached to Compute Environment that can not run Jobs with capability {platform}"
        raise _fail("jobQueue:", rule)


# -- instance types of EC2 compute environments -----------------------------------------------------------------

# AWS answers an unknown instance type with "Instance type can only be one of [...]" and the list of every family
# and type of the region (reported from CreateComputeEnvironment in Netflix/metaflow#70, aws/amazon-genomics-cli#209).
# batchplane has no region catalogue: it accepts AWS's keywords, and a family or family.size of a known instance
# class, by pattern (docs/adr/0022-platform-rules.md).
INSTANCE_KEYWORDS = ("optimal", "default_x86_64", "default_arm64")
INSTANCE_CLASSES = (
    "a", "c", "d", "dl", "f", "g", "gr", "h", "hpc", "i", "im", "inf", "is", "m", "mac", "p", "r", "t", "trn", "u",
    "vt", "x", "z",
)  # fmt: skip
INSTANCE_TYPE = re.compile(
    r"(?P<cls>[a-z]+)(-[0-9]+tb)?[0-9]+[a-z0-9-]*(\.(nano|micro|small|medium|large|[0-9]*xlarge|metal(-[0-9]+xl)?))?"
)


def instance_types(values: Iterable[str], field: str) -> None:
    for i, value in enumerate(values):
        match = INSTANCE_TYPE.fullmatch(value)
        if value in INSTANCE_KEYWORDS or (match is not None and match.group("cls") in INSTANCE_CLASSES):
            continue
        raise _fail(
            f"{field}[{i}]",
            f"Instance type can only be one of [{', '.join(INSTANCE_KEYWORDS)}, an EC2 instance family such as m5 "
            f"or an instance type such as m5.large]; got {value!r}",
        )
