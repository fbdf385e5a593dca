"""The resources of AWS Batch as frozen dataclasses. Pure: stdlib only.

Fields the control plane reasons about (names, states, capacity, priorities) are typed. Nested configuration that
batchplane stores and returns but does not interpret (a CE's launch template, a job definition's volumes, ...) stays
in its wire shape as a plain dict, validated against the Batch model on the way in: mirroring all of it as classes
would be thousands of lines that only copy data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

JsonDict = dict[str, Any]

FARGATE_TYPES = ("FARGATE", "FARGATE_SPOT")
EC2_TYPES = ("EC2", "SPOT")
VALID = "VALID"
INVALID = "INVALID"
# A queue or compute environment being deleted: its jobs are terminated, then the record goes (control/deletion.py).
DELETING = "DELETING"
CE_HEALTHY = "ComputeEnvironment Healthy"


@dataclass(frozen=True)
class ComputeEnvironment:
    name: str
    arn: str
    ce_type: str  # MANAGED | UNMANAGED
    state: str  # ENABLED | DISABLED
    status: str  # CREATING | UPDATING | DELETING | DELETED | VALID | INVALID
    status_reason: str
    uuid: str
    created_at: int
    compute_resources: JsonDict | None = None  # wire-shaped ComputeResource (MANAGED only)
    unmanaged_vcpus: int | None = None
    service_role: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    extra: JsonDict = field(default_factory=dict)  # updatePolicy, ecsSettings, context, eksConfiguration
    # Capacity bookkeeping (control/capacity.py), not on the wire: since when a managed EC2/SPOT CE has had no
    # work, for minScaleDownDelayMinutes. None while busy.
    idle_since: int | None = None
    # When DeleteComputeEnvironment marked it DELETING (epoch ms; control/deletion.py waits a grace after it)
    deleting_since: int | None = None
    version: int = 0

    @property
    def resource_type(self) -> str | None:
        """EC2 | SPOT | FARGATE | FARGATE_SPOT for managed CEs, None for unmanaged ones."""
        return None if self.compute_resources is None else str(self.compute_resources["type"])

    @property
    def max_vcpus(self) -> int:
        if self.compute_resources is None:
            return int(self.unmanaged_vcpus or 0)
        return int(self.compute_resources.get("maxvCpus", 0))

    @property
    def is_fargate(self) -> bool:
        return self.resource_type in FARGATE_TYPES

    @property
    def schedulable(self) -> bool:
        return self.state == "ENABLED" and self.status == VALID


@dataclass(frozen=True)
class ComputeEnvironmentOrder:
    order: int
    compute_environment: str  # ARN


@dataclass(frozen=True)
class JobQueue:
    name: str
    arn: str
    priority: int
    state: str
    status: str
    status_reason: str
    created_at: int
    compute_environment_order: tuple[ComputeEnvironmentOrder, ...] = ()
    scheduling_policy_arn: str | None = None
    job_state_time_limit_actions: tuple[JsonDict, ...] = ()
    job_queue_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # When DeleteJobQueue marked it DELETING (epoch ms; control/deletion.py removes it only a grace after this)
    deleting_since: int | None = None
    version: int = 0

    @property
    def deleting(self) -> bool:
        return self.status == DELETING

    def ce_arns_in_order(self) -> list[str]:
        return [o.compute_environment for o in sorted(self.compute_environment_order, key=lambda o: o.order)]


@dataclass(frozen=True)
class JobDefinition:
    name: str
    revision: int
    arn: str
    jd_type: str  # container | multinode
    status: str  # ACTIVE | INACTIVE
    created_at: int
    # Everything else of RegisterJobDefinition, in wire shape: containerProperties, parameters, retryStrategy,
    # timeout, platformCapabilities, propagateTags, schedulingPriority, ecsProperties, nodeProperties, ...
    spec: JsonDict = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    version: int = 0

    def deregistered(self) -> JobDefinition:
        return replace(self, status="INACTIVE")


@dataclass(frozen=True)
class ShareWeight:
    share_identifier: str
    weight_factor: float = 1.0


@dataclass(frozen=True)
class FairsharePolicy:
    share_decay_seconds: int = 0
    compute_reservation: int = 0
    share_distribution: tuple[ShareWeight, ...] = ()


@dataclass(frozen=True)
class SchedulingPolicy:
    name: str
    arn: str
    created_at: int
    fairshare: FairsharePolicy | None = None
    tags: dict[str, str] = field(default_factory=dict)
    version: int = 0
