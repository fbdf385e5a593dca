"""Every API rule the wire model does not carry, as named checks on wire-shaped requests. Pure.

Each check raises InvalidRequest whose message names the field and the rule. AWS quotas are values of `Limits`
(domain/limits.py, re-exported here), not structure: a deployment may lift them (spec §7).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.domain import platform
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.limits import SETTABLE_LIMITS as SETTABLE_LIMITS
from chalicelib.domain.limits import Limits as Limits
from chalicelib.domain.limits import limit as limit
from chalicelib.domain.limits import limits_from_text as limits_from_text
from chalicelib.domain.limits import parse_limits as parse_limits
from chalicelib.domain.model import EC2_TYPES, FARGATE_TYPES
from chalicelib.domain.platform import FARGATE_MEMORY as FARGATE_MEMORY

RESOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
SHARE_IDENTIFIER = re.compile(r"[A-Za-z0-9]{1,255}\*?")
# evaluateOnExit patterns: letters, digits, '.', ':', white space; an optional trailing '*' (spec §4.6).
EXIT_REASON_PATTERN = re.compile(r"[A-Za-z0-9.: \t]*\*?")
EXIT_CODE_PATTERN = re.compile(r"[0-9]*\*?")
RESERVED_ENV_PREFIX = "AWS_BATCH"
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

TIME_LIMIT_REASONS = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
)


def fail(field: str, rule: str) -> InvalidRequest:
    return InvalidRequest(f"{field} {rule}")


def resource_name(value: str, field: str) -> None:
    if not RESOURCE_NAME.fullmatch(value):
        raise fail(field, "must be 1-128 characters of letters, numbers, hyphens (-) and underscores (_)")


def job_name(value: str, field: str = "jobName") -> None:
    if not JOB_NAME.fullmatch(value):
        raise fail(
            field,
            "must be 1-128 characters, start with a letter or number, and contain only letters, numbers, "
            "hyphens (-) and underscores (_)",
        )


def in_range(value: float, low: float, high: float | None, field: str, note: str = "") -> None:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise fail(field, f"must be {bound}; got {value}{note}")


def tags(value: Mapping[str, str] | None, limits: Limits, field: str = "tags") -> None:
    if value is None:
        return
    if not 1 <= len(value) <= limits.max_tags:
        raise fail(field, f"must have between 1 and {limits.max_tags} entries; got {len(value)}")
    for key, val in value.items():
        if not 1 <= len(key) <= 128:
            raise fail(f"{field} key {key!r}", "must be 1-128 characters")
        if len(val) > 256:
            raise fail(f"{field}[{key!r}]", "must be at most 256 characters")
        if key.lower().startswith("aws:"):
            raise fail(f"{field} key {key!r}", "must not start with the reserved prefix 'aws:'")


def tag_keys(keys: list[str], limits: Limits) -> None:
    if not 1 <= len(keys) <= limits.max_tags:
        raise fail("tagKeys", f"must have between 1 and {limits.max_tags} entries")


def reason(value: str, limits: Limits) -> None:
    if len(value) > limits.max_reason_chars:
        raise fail("reason", f"must be at most {limits.max_reason_chars} characters")


# -- compute environments --------------------------------------------------------------------------------------


def compute_environment(req: Mapping[str, Any]) -> None:
    resource_name(req["computeEnvironmentName"], "computeEnvironmentName")
    if req.get("state") not in (None, "ENABLED"):
        # [B] CreateComputeEnvironment.state: "A compute environment must be created in the ENABLED state."
        raise fail("state", f"must be ENABLED when a compute environment is created; got {req['state']!r}")
    ce_type = req["type"]
    resources = req.get("computeResources")
    if ce_type == "MANAGED":
        if resources is None:
            raise fail("computeResources", "is required for a MANAGED compute environment")
        if req.get("unmanagedvCpus") is not None:
            raise fail("unmanagedvCpus", "is only supported for UNMANAGED compute environments")
        compute_resources(resources, "computeResources")
    else:
        if resources is not None:
            raise fail("computeResources", "must not be given for an UNMANAGED compute environment")
        if req.get("unmanagedvCpus") is not None:
            in_range(req["unmanagedvCpus"], 0, None, "unmanagedvCpus")


_FARGATE_FORBIDDEN = (
    "minvCpus",
    "desiredvCpus",
    "allocationStrategy",
    "instanceTypes",
    "imageId",
    "ec2KeyPair",
    "instanceRole",
    "placementGroup",
    "bidPercentage",
    "spotIamFleetRole",
    "launchTemplate",
    "ec2Configuration",
    "tags",
)
_SPOT_ONLY_STRATEGIES = (
    "SPOT_CAPACITY_OPTIMIZED",
    "SPOT_PRICE_CAPACITY_OPTIMIZED",
    "SPOT_CAPACITY_OPTIMIZED_PRIORITIZED",
)


def compute_resources(res: Mapping[str, Any], field: str, *, update: bool = False) -> None:
    rtype = res.get("type")
    if rtype is not None and rtype not in FARGATE_TYPES + EC2_TYPES:
        raise fail(f"{field}.type", f"must be one of {', '.join(FARGATE_TYPES + EC2_TYPES)}; got {rtype!r}")
    for key in ("minvCpus", "maxvCpus", "desiredvCpus"):
        if res.get(key) is not None:
            in_range(res[key], 0, None, f"{field}.{key}")
    max_v, min_v, desired = res.get("maxvCpus"), res.get("minvCpus"), res.get("desiredvCpus")
    if max_v is not None and min_v is not None and min_v > max_v:
        raise fail(f"{field}.minvCpus", f"must not exceed maxvCpus ({max_v}); got {min_v}")
    if desired is not None:
        if min_v is not None and desired < min_v:
            raise fail(f"{field}.desiredvCpus", f"must be at least minvCpus ({min_v}); got {desired}")
        if max_v is not None and desired > max_v:
            raise fail(f"{field}.desiredvCpus", f"must not exceed maxvCpus ({max_v}); got {desired}")
    if rtype in FARGATE_TYPES:
        for key in _FARGATE_FORBIDDEN:
            if res.get(key) is not None:
                raise fail(f"{field}.{key}", f"is not applicable to {rtype} compute resources; don't specify it")
        if not update and not res.get("securityGroupIds"):
            raise fail(f"{field}.securityGroupIds", f"is required for {rtype} compute resources")
        if len(res.get("subnets") or []) > 16:
            raise fail(f"{field}.subnets", "must have at most 16 entries for Fargate")
    if not update and rtype is not None and not res.get("subnets"):
        raise fail(f"{field}.subnets", f"is required for {rtype} compute resources")
    strategy = res.get("allocationStrategy")
    if rtype == "EC2" and strategy in _SPOT_ONLY_STRATEGIES:
        raise fail(f"{field}.allocationStrategy", f"{strategy} is only supported for SPOT compute resources")
    if rtype == "SPOT" and strategy == "BEST_FIT_PROGRESSIVE_ORDERED":
        raise fail(f"{field}.allocationStrategy", "BEST_FIT_PROGRESSIVE_ORDERED is only supported for EC2")
    if rtype == "SPOT" and strategy in (None, "BEST_FIT") and not update and not res.get("spotIamFleetRole"):
        raise fail(f"{field}.spotIamFleetRole", "is required for SPOT with the BEST_FIT allocation strategy")
    if rtype in EC2_TYPES and not update:
        if not res.get("instanceTypes"):
            raise fail(f"{field}.instanceTypes", f"is required for {rtype} compute resources")
        if not res.get("instanceRole"):
            raise fail(f"{field}.instanceRole", f"is required for {rtype} compute resources")
    if rtype == "SPOT" and res.get("bidPercentage") is not None:  # a Spot price limit: ignored on EC2, as on AWS
        in_range(res["bidPercentage"], 0, 100, f"{field}.bidPercentage")
    platform.instance_types(res.get("instanceTypes") or [], f"{field}.instanceTypes")
    policy = res.get("scalingPolicy") or {}
    delay = policy.get("minScaleDownDelayMinutes")
    if delay not in (None, 0):
        in_range(delay, 20, 10080, f"{field}.scalingPolicy.minScaleDownDelayMinutes")


# -- job queues ------------------------------------------------------------------------------------------------


def job_queue_common(req: Mapping[str, Any], limits: Limits) -> None:
    order = req.get("computeEnvironmentOrder")
    if order is not None:
        if len(order) > limits.max_ces_per_queue:
            raise fail(
                "computeEnvironmentOrder",
                f"must have at most {limits.max_ces_per_queue} compute environments" + limit("max_ces_per_queue"),
            )
        arns = [o["computeEnvironment"] for o in order]
        if len(set(arns)) != len(arns):
            raise fail("computeEnvironmentOrder", "must not list the same compute environment twice")
        orders = [o["order"] for o in order]
        if len(set(orders)) != len(orders):
            raise fail("computeEnvironmentOrder", "must not repeat an order value")
    if req.get("priority") is not None:
        in_range(req["priority"], 0, None, "priority")
    for i, action in enumerate(req.get("jobStateTimeLimitActions") or []):
        field = f"jobStateTimeLimitActions[{i}]"
        if action["state"] != "RUNNABLE":
            raise fail(f"{field}.state", "must be RUNNABLE")
        in_range(action["maxTimeSeconds"], 600, 86400, f"{field}.maxTimeSeconds")
        if action["action"] != "CANCEL":
            raise fail(f"{field}.action", "must be CANCEL for ECS and Fargate job queues")
        if action["reason"] not in TIME_LIMIT_REASONS:
            raise fail(f"{field}.reason", f"must be one of {', '.join(TIME_LIMIT_REASONS)}")


def queue_environments(resource_types: Iterable[str | None]) -> None:
    """A queue's CEs are all Fargate or all EC2 (spec §3.2)."""
    kinds = {"FARGATE" if t in FARGATE_TYPES else "EC2" if t in EC2_TYPES else "UNMANAGED" for t in resource_types}
    if "FARGATE" in kinds and len(kinds) > 1:
        raise fail("computeEnvironmentOrder", "cannot mix Fargate compute environments with EC2 or unmanaged ones")


# -- job definitions -------------------------------------------------------------------------------------------


def environment(env: Iterable[Mapping[str, Any]], field: str) -> None:
    for i, var in enumerate(env):
        name = var.get("name") or ""
        if not name:  # the model makes neither member required; a variable without a name cannot be set
            raise fail(f"{field}[{i}].name", "is required")
        if name.startswith(RESERVED_ENV_PREFIX):
            raise fail(f"{field}[{i}].name", f"must not start with the reserved prefix {RESERVED_ENV_PREFIX}")


def command(cmd: list[str], field: str) -> None:
    if any(part == "" for part in cmd):
        raise fail(field, "cannot have empty strings")


def retry_strategy(strategy: Mapping[str, Any], limits: Limits, field: str = "retryStrategy") -> None:
    attempts = strategy.get("attempts")
    if attempts is not None:
        in_range(attempts, 1, limits.max_attempts, f"{field}.attempts", limit("max_attempts"))
    rules = strategy.get("evaluateOnExit") or []
    if rules and attempts is None:
        raise fail(f"{field}.attempts", "is required when evaluateOnExit is given")
    if len(rules) > limits.max_evaluate_on_exit:
        raise fail(
            f"{field}.evaluateOnExit",
            f"must have at most {limits.max_evaluate_on_exit} entries" + limit("max_evaluate_on_exit"),
        )
    for i, rule in enumerate(rules):
        rfield = f"{field}.evaluateOnExit[{i}]"
        if str(rule["action"]).upper() not in ("RETRY", "EXIT"):
            raise fail(f"{rfield}.action", "must be RETRY or EXIT")
        for key, pattern in (
            ("onStatusReason", EXIT_REASON_PATTERN),
            ("onReason", EXIT_REASON_PATTERN),
            ("onExitCode", EXIT_CODE_PATTERN),
        ):
            value = rule.get(key)
            if value is None:
                continue
            if len(value) > 512:
                raise fail(f"{rfield}.{key}", "must be at most 512 characters")
            if not pattern.fullmatch(value):
                raise fail(
                    f"{rfield}.{key}",
                    "contains restricted characters; only letters, numbers, '.', ':', spaces and a trailing '*' "
                    "are allowed"
                    if key != "onExitCode"
                    else "must be digits with an optional trailing '*'",
                )


def timeout(value: Mapping[str, Any], limits: Limits, field: str = "timeout") -> None:
    seconds = value.get("attemptDurationSeconds")
    if seconds is not None:
        in_range(
            seconds, limits.min_timeout_seconds, None, f"{field}.attemptDurationSeconds", limit("min_timeout_seconds")
        )


def scheduling_priority(value: int | None, field: str) -> None:
    if value is not None:
        in_range(value, 0, 9999, field)


def job_definition(req: Mapping[str, Any], limits: Limits) -> None:
    resource_name(req["jobDefinitionName"], "jobDefinitionName")
    size = len(json.dumps(req, separators=(",", ":")))
    if size > limits.max_job_definition_bytes:
        raise fail(
            "request",
            f"must be at most {limits.max_job_definition_bytes} bytes; got {size}" + limit("max_job_definition_bytes"),
        )
    kinds = [k for k in ("containerProperties", "ecsProperties", "eksProperties") if req.get(k) is not None]
    if req["type"] == "container":
        if len(kinds) != 1:
            raise fail(
                "containerProperties",
                "exactly one of containerProperties, ecsProperties or eksProperties is required for type container",
            )
        if req.get("nodeProperties") is not None:
            raise fail("nodeProperties", "must not be given for type container")
    else:
        if req.get("nodeProperties") is None:
            raise fail("nodeProperties", "is required for type multinode")
        if kinds:
            raise fail(kinds[0], "must not be given for type multinode; use nodeProperties")
        if "FARGATE" in (req.get("platformCapabilities") or []):
            raise fail("platformCapabilities", "multinode job definitions are not supported on FARGATE")
    fargate = "FARGATE" in (req.get("platformCapabilities") or [])
    container = req.get("containerProperties")
    if container is not None:
        container_properties(container, "containerProperties", fargate=fargate)
    if req.get("retryStrategy") is not None:
        retry_strategy(req["retryStrategy"], limits)
    if req.get("timeout") is not None:
        timeout(req["timeout"], limits)
    scheduling_priority(req.get("schedulingPriority"), "schedulingPriority")
    tags(req.get("tags"), limits)


def container_properties(c: Mapping[str, Any], field: str, *, fargate: bool) -> None:
    if not c.get("image"):
        raise fail(f"{field}.image", "is required")
    if len(c["image"]) > 255:
        raise fail(f"{field}.image", "must be at most 255 characters")
    if c.get("command") is not None:
        command(c["command"], f"{field}.command")
    environment(c.get("environment") or [], f"{field}.environment")
    on = platform.FARGATE if fargate else platform.EC2
    values = platform.resource_requirements(c.get("resourceRequirements") or [], f"{field}.resourceRequirements", on)
    if c.get("memory") is not None:
        in_range(c["memory"], platform.MIN_MEMORY_MIB, None, f"{field}.memory")
    if c.get("vcpus") is not None:
        in_range(c["vcpus"], 1, None, f"{field}.vcpus")
    linux_parameters(c.get("linuxParameters") or {}, f"{field}.linuxParameters")
    storage = (c.get("ephemeralStorage") or {}).get("sizeInGiB")
    if storage is not None:
        in_range(storage, 21, 200, f"{field}.ephemeralStorage.sizeInGiB")
    if fargate:
        platform.fargate_container(c, field, values)


def linux_parameters(lp: Mapping[str, Any], field: str) -> None:
    """The documented ranges of linuxParameters (botocore LinuxParameters, Tmpfs)."""
    if lp.get("swappiness") is not None:
        in_range(lp["swappiness"], 0, 100, f"{field}.swappiness")
    if lp.get("maxSwap") is not None:
        in_range(lp["maxSwap"], 0, None, f"{field}.maxSwap")
    if lp.get("sharedMemorySize") is not None:
        in_range(lp["sharedMemorySize"], 1, None, f"{field}.sharedMemorySize")
    for i, tmpfs in enumerate(lp.get("tmpfs") or []):
        in_range(tmpfs["size"], 1, None, f"{field}.tmpfs[{i}].size")


# -- scheduling policies ---------------------------------------------------------------------------------------


def scheduling_policy(req: Mapping[str, Any]) -> None:
    if "name" in req:
        resource_name(req["name"], "name")
    if req.get("quotaSharePolicy") is not None:
        raise fail("quotaSharePolicy", "is not supported by batchplane; use fairsharePolicy")
    fair = req.get("fairsharePolicy")
    if fair is None:
        return
    if fair.get("shareDecaySeconds") is not None:
        in_range(fair["shareDecaySeconds"], 0, 604800, "fairsharePolicy.shareDecaySeconds")
    if fair.get("computeReservation") is not None:
        in_range(fair["computeReservation"], 0, 99, "fairsharePolicy.computeReservation")
    seen: list[str] = []
    for i, share in enumerate(fair.get("shareDistribution") or []):
        field = f"fairsharePolicy.shareDistribution[{i}]"
        ident = share["shareIdentifier"]
        if not SHARE_IDENTIFIER.fullmatch(ident):
            raise fail(f"{field}.shareIdentifier", "must be 1-255 letters and numbers, optionally ending in '*'")
        if share.get("weightFactor") is not None:
            in_range(share["weightFactor"], 0.0001, 999.9999, f"{field}.weightFactor")
        for other in seen:
            if _shares_overlap(ident, other):
                raise fail(f"{field}.shareIdentifier", f"{ident!r} overlaps {other!r}")
        seen.append(ident)


def _shares_overlap(a: str, b: str) -> bool:
    def covers(prefix: str, other: str) -> bool:
        return prefix.endswith("*") and other.rstrip("*").startswith(prefix[:-1])

    return a == b or covers(a, b) or covers(b, a)
