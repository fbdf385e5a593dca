"""SubmitJob rules and what a job runs: validation, overrides merged onto the job definition, Ref:: parameters,
the reserved AWS_BATCH_* environment. Pure."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.domain import caps, conditions, platform, retry, validation
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import Job, Timeout
from chalicelib.domain.retry import RetryStrategy
from chalicelib.domain.validation import Limits, fail

DEFAULT_VCPUS = 1.0
DEFAULT_MEMORY_MIB = 2048


def validate_submit(req: Mapping[str, Any], limits: Limits) -> None:
    validation.job_name(req["jobName"])
    size = len(json.dumps(req, separators=(",", ":")))
    if size > limits.max_submit_bytes:
        raise fail(
            "request",
            f"must be at most {limits.max_submit_bytes} bytes; got {size}" + validation.limit("max_submit_bytes"),
        )
    array = req.get("arrayProperties") or {}
    is_array = array.get("size") is not None
    if is_array:
        validation.in_range(
            array["size"],
            limits.min_array_size,
            limits.max_array_size,
            "arrayProperties.size",
            validation.limit("max_array_size"),
        )
    deps = req.get("dependsOn") or []
    if len(deps) > limits.max_dependencies:
        raise fail(
            "dependsOn",
            f"must have at most {limits.max_dependencies} entries; got {len(deps)}"
            + validation.limit("max_dependencies"),
        )
    sequential = 0
    seen: dict[str, str | None] = {}
    for i, dep in enumerate(deps):
        field = f"dependsOn[{i}]"
        kind = dep.get("type")
        if kind not in (None, "N_TO_N", "SEQUENTIAL", *conditions.CONDITIONS):
            raise fail(f"{field}.type", f"must be one of N_TO_N, SEQUENTIAL, {', '.join(conditions.CONDITIONS)}")
        if kind in conditions.CONDITIONS and not dep.get("jobId"):  # on a whole job (domain/conditions.py)
            raise fail(f"{field}.jobId", f"is required for an {kind} dependency")
        job_id = dep.get("jobId")
        if job_id and kind not in ("N_TO_N", "SEQUENTIAL"):
            if seen.setdefault(job_id, kind) != kind:
                raise fail(f"{field}.type", f"job {job_id} is listed with two different conditions")
            if kind in conditions.CONDITIONS:
                continue
        if kind in ("N_TO_N", "SEQUENTIAL") and not is_array:
            # AWS documents `type` for array jobs only (JobDependency; "Job dependencies" in the user guide) and
            # public pipeline code submits {"jobId": X, "type": "SEQUENTIAL"} for plain jobs: a non-array job
            # waits for the whole job X, whatever the type (control/jobs.py `_check_dependencies`). Without a jobId
            # there is nothing to wait for.
            if not dep.get("jobId"):
                raise fail(f"{field}.type", f"{kind} without a jobId is only valid for array jobs")
            continue
        if kind == "SEQUENTIAL":
            sequential += 1
            if dep.get("jobId"):
                raise fail(f"{field}.jobId", "must not be given with a SEQUENTIAL dependency")
        elif not dep.get("jobId"):
            raise fail(f"{field}.jobId", "is required" + (" for an N_TO_N dependency" if kind else ""))
    if sequential > 1:
        raise fail("dependsOn", "may hold at most one SEQUENTIAL entry")
    overrides = req.get("containerOverrides") or {}
    if overrides.get("command") is not None:
        validation.command(overrides["command"], "containerOverrides.command")
    validation.environment(overrides.get("environment") or [], "containerOverrides.environment")
    platform.resource_requirements(
        overrides.get("resourceRequirements") or [], "containerOverrides.resourceRequirements", None
    )
    if overrides.get("memory") is not None:
        validation.in_range(overrides["memory"], platform.MIN_MEMORY_MIB, None, "containerOverrides.memory")
    if overrides.get("vcpus") is not None:
        validation.in_range(overrides["vcpus"], 1, None, "containerOverrides.vcpus")
    if req.get("retryStrategy") is not None:
        validation.retry_strategy(req["retryStrategy"], limits)
    if req.get("timeout") is not None:
        validation.timeout(req["timeout"], limits)
    validation.scheduling_priority(req.get("schedulingPriorityOverride"), "schedulingPriorityOverride")
    validation.tags(req.get("tags"), limits)
    caps.check_tags(req.get("tags"), "tags")


def retry_strategy(req: Mapping[str, Any], jd_spec: Mapping[str, Any]) -> RetryStrategy | None:
    """The job's retry strategy, typed: the submit's (validated by `validate_submit`), else the job definition's;
    actions lowercase, as AWS returns them."""
    return RetryStrategy.from_wire(retry.normalized(req.get("retryStrategy") or jd_spec.get("retryStrategy") or {}))


def timeout(req: Mapping[str, Any], jd_spec: Mapping[str, Any]) -> Timeout | None:
    """The job's timeout, typed: the submit's, else the job definition's."""
    return Timeout.from_wire(req.get("timeout") or jd_spec.get("timeout"))


def validate_share(share: str | None, fair_share_queue: bool, queue: str) -> None:
    if fair_share_queue and not share:
        raise fail("shareIdentifier", f"is required: job queue {queue} has a fair-share scheduling policy")
    if not fair_share_queue and share:
        raise fail("shareIdentifier", f"must not be given: job queue {queue} has no fair-share scheduling policy")
    if share and not validation.SHARE_IDENTIFIER.fullmatch(share):
        raise fail("shareIdentifier", "must be 1-255 letters and numbers, optionally ending in '*'")


def effective_container(jd_container: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The job definition's container with SubmitJob's containerOverrides applied (spec §3.4)."""
    container: dict[str, Any] = copy.deepcopy(dict(jd_container))
    if overrides.get("command") is not None:
        container["command"] = list(overrides["command"])
    if overrides.get("environment"):
        # .get("name"): a definition registered before names were required may hold a nameless entry; skip it
        env = {e["name"]: e.get("value", "") for e in container.get("environment") or [] if e.get("name")}
        env.update({e["name"]: e.get("value", "") for e in overrides["environment"] if e.get("name")})
        container["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    if overrides.get("resourceRequirements"):
        by_type = {r["type"]: r for r in container.get("resourceRequirements") or []}
        by_type.update({r["type"]: r for r in overrides["resourceRequirements"]})
        container["resourceRequirements"] = list(by_type.values())
    for legacy in ("vcpus", "memory"):
        if overrides.get(legacy) is not None:
            kind = "VCPU" if legacy == "vcpus" else "MEMORY"
            if any(r["type"] == kind for r in container.get("resourceRequirements") or []):
                raise InvalidRequest(
                    f"containerOverrides.{legacy} cannot override resourceRequirements set in the job definition; "
                    "use containerOverrides.resourceRequirements"
                )
            container[legacy] = overrides[legacy]
    if overrides.get("instanceType") is not None:
        raise fail("containerOverrides.instanceType", "is only valid for multi-node parallel jobs")
    return container


def vcpus_and_memory(container: Mapping[str, Any]) -> tuple[float, int]:
    """The job's vCPUs and MiB. The values are checked again: a definition stored before batchplane checked them
    (e.g. MEMORY "inf") is refused here, not turned into an OverflowError."""
    reqs = platform.resource_requirements(
        container.get("resourceRequirements") or [], "jobDefinition containerProperties.resourceRequirements", None
    )
    vcpus = float(reqs.get("VCPU", container.get("vcpus") or DEFAULT_VCPUS))
    memory = int(reqs.get("MEMORY", container.get("memory") or DEFAULT_MEMORY_MIB))
    return vcpus, memory


def render_command(command: list[str], parameters: Mapping[str, str]) -> list[str]:
    """Replace whole `Ref::name` elements with the parameter's value; unknown placeholders stay as they are."""
    out = []
    for part in command:
        if part.startswith("Ref::") and part[5:] in parameters:
            out.append(parameters[part[5:]])
        else:
            out.append(part)
    return out


def batch_environment(job: Job, attempt: int, compute_environment: str) -> dict[str, str]:
    """The job's environment: its container's variables plus the reserved AWS_BATCH_* ones (which always win)."""
    env = {e["name"]: str(e.get("value", "")) for e in job.container.get("environment") or [] if e.get("name")}
    env.update(
        {
            "AWS_BATCH_JOB_ID": job.job_id,
            "AWS_BATCH_JOB_ATTEMPT": str(attempt),
            "AWS_BATCH_CE_NAME": compute_environment,
            "AWS_BATCH_JQ_NAME": job.queue,
        }
    )
    if job.array is not None and job.array.index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array.index)
    return env
