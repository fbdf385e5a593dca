"""What a job cost: resource-seconds per finished attempt and, on AWS, an estimate in US dollars. Pure.

A batchplane extension (docs/adr/0030-concurrency-caps-and-cost.md). An attempt's resource-seconds follow from what
batchplane already records for it: its startedAt/stoppedAt (the same interval fair share charges, control/usage.py)
and the job's vCPUs, memory and GPUs, so nothing more is written per job. The capacity it ran on (FARGATE,
FARGATE_SPOT, EC2, SPOT) is recorded on the attempt at the claim, from the compute environment the dispatcher
placed it on, so a later change of that environment does not re-price it.

Prices (US dollars per hour; `PRICES`, with `SOURCE`): Fargate Linux/x86 on-demand is AWS's published rate, billed
per second with a one-minute minimum. The others are estimates, said so in the answer (`estimated`):
- FARGATE_SPOT: Fargate Spot's rate moves with spare capacity and is not in any ECS event; AWS advertises "up to
  70%" off, so 30% of on-demand is used.
- EC2: the task's share of a general-purpose on-demand instance (m5.large: 2 vCPU, 8 GiB at $0.096/h): the larger
  of its vCPU and memory fractions. batchplane does not know which instance type ECS placed the task on without a
  DescribeContainerInstances + DescribeInstances per attempt, which this estimate does not justify.
- SPOT: the same share at 35% of on-demand (DescribeSpotPriceHistory per attempt would cost one more AWS call per
  job; batchplane does not make it).
A region without its own row is priced at us-east-1's, and the answer names the region the prices are from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.jobs import Attempt, Job

MEMBER = "batchplaneCost"  # the extension member of JobDetail and JobSummary
SOURCE = "https://aws.amazon.com/fargate/pricing/ (Linux/x86, us-east-1, read 2026-06); estimates: docs/adr/0030"
DEFAULT_REGION = "us-east-1"
FARGATE_SPOT_FRACTION = 0.30
EC2_INSTANCE = (2.0, 8.0, 0.096)  # m5.large: vCPUs, GiB, $/h on demand (us-east-1)
EC2_SPOT_FRACTION = 0.35
MINIMUM_SECONDS = 60  # Fargate bills at least one minute per task


@dataclass(frozen=True)
class Price:
    vcpu_hour: float
    gib_hour: float


# region -> Fargate on-demand Linux/x86 price.
PRICES: Mapping[str, Price] = {"us-east-1": Price(0.04048, 0.004445)}


@dataclass(frozen=True)
class Usage:
    vcpu_seconds: float = 0.0
    gib_seconds: float = 0.0
    gpu_seconds: float = 0.0
    usd: float | None = None  # None: not priced (the local runtime, or an attempt on unmanaged capacity)
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        usd = None if self.usd is None and other.usd is None else (self.usd or 0.0) + (other.usd or 0.0)
        return Usage(
            self.vcpu_seconds + other.vcpu_seconds,
            self.gib_seconds + other.gib_seconds,
            self.gpu_seconds + other.gpu_seconds,
            usd,
            self.estimated or other.estimated,
        )


def gpus(job: Job) -> int:
    """The GPUs the job holds: its container's, or every container of a multi-container job's."""
    containers: list[Mapping[str, Any]] = [job.container]
    for task in (job.ecs_properties or {}).get("taskProperties") or []:
        containers += task.get("containers") or []
    return sum(
        int(r.get("value") or 0)
        for c in containers
        for r in c.get("resourceRequirements") or []
        if r.get("type") == "GPU"
    )


def _price(capacity: str | None, region: str, vcpus: float, gib: float, seconds: float) -> tuple[float, bool] | None:
    """(US dollars, estimated) for `seconds` of the given size on the capacity; None: not priced."""
    fargate = PRICES.get(region, PRICES[DEFAULT_REGION])
    if capacity in ("FARGATE", "FARGATE_SPOT"):
        hours = max(seconds, MINIMUM_SECONDS) / 3600
        usd = (vcpus * fargate.vcpu_hour + gib * fargate.gib_hour) * hours
        return (usd, False) if capacity == "FARGATE" else (usd * FARGATE_SPOT_FRACTION, True)
    if capacity in ("EC2", "SPOT"):
        inst_vcpus, inst_gib, hourly = EC2_INSTANCE
        usd = max(vcpus / inst_vcpus, gib / inst_gib) * hourly * seconds / 3600
        return (usd, True) if capacity == "EC2" else (usd * EC2_SPOT_FRACTION, True)
    return None


def attempt_usage(job: Job, attempt: Attempt, region: str | None) -> Usage:
    """One attempt's resource-seconds (zero until it has both started and stopped); priced when `region` is given
    (the AWS runtime) and the attempt's capacity is known."""
    if attempt.started_at is None or attempt.stopped_at is None:
        return Usage()
    seconds = max(0, attempt.stopped_at - attempt.started_at) / 1000
    gib = job.memory / 1024
    usage = Usage(job.vcpus * seconds, gib * seconds, gpus(job) * seconds)
    priced = _price(attempt.capacity, region, job.vcpus, gib, seconds) if region is not None else None
    if priced is None:
        return usage
    return Usage(usage.vcpu_seconds, usage.gib_seconds, usage.gpu_seconds, priced[0], priced[1])


def job_usage(job: Job, region: str | None) -> Usage:
    """The job's finished attempts together."""
    return sum((attempt_usage(job, a, region) for a in job.attempts), Usage())


def wire(usage: Usage, region: str | None) -> dict[str, Any]:
    """The extension member's value (rounded: milliseconds of resource, micro-dollars)."""
    out: dict[str, Any] = {
        "vcpuSeconds": round(usage.vcpu_seconds, 3),
        "memoryGiBSeconds": round(usage.gib_seconds, 3),
        "gpuSeconds": round(usage.gpu_seconds, 3),
    }
    if usage.usd is not None:
        out["costUsd"] = round(usage.usd, 6)
        out["estimated"] = usage.estimated
        out["priceRegion"] = region if region in PRICES else DEFAULT_REGION
        out["priceSource"] = SOURCE
    return out


def member(job: Job, region: str | None) -> dict[str, Any]:
    """`{MEMBER: ...}` for a job with a finished attempt, else nothing (an extension member only where it says
    something)."""
    if not any(a.stopped_at is not None and a.started_at is not None for a in job.attempts):
        return {}
    return {MEMBER: wire(job_usage(job, region), region)}


def total(members: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The sum of extension members (as a client reads them back): vCPU-, GiB-, GPU-seconds and cost where given."""
    keys = ("vcpuSeconds", "memoryGiBSeconds", "gpuSeconds")
    out = dict.fromkeys(keys, 0.0)
    for m in members:
        for key in keys:
            out[key] += float(m.get(key, 0.0))
        if "costUsd" in m:
            out["costUsd"] = out.get("costUsd", 0.0) + float(m["costUsd"])
    return out


def fmt_seconds(seconds: float) -> str:
    """Resource-seconds for a person: 12.5 s, 3.2 h."""
    if seconds < 3600:
        return f"{seconds:.1f} s"
    return f"{seconds / 3600:.2f} h"


def fmt_usd(usd: float) -> str:
    return f"${usd:.6f}" if usd < 0.01 else f"${usd:.2f}" if not math.isnan(usd) else "-"
