"""The CapacityGroups port: the instances behind managed EC2/SPOT compute environments (ADR 0004).

control/capacity.py decides each CE's desiredvCpus and sets it through this port; it builds no adapter itself
(issue 15): the AWS runtime injects `compute.capacity_aws.AsgCapacity` (one Auto Scaling group per CE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.model import ComputeEnvironment


@dataclass(frozen=True)
class GroupSize:
    """A group's size in vCPUs: its bounds and its desired capacity."""

    min_size: int
    max_size: int
    desired: int


class CapacityGroups(Protocol):
    def group_name(self, compute_environment: str) -> str:
        """The name of the group that provides a CE's instances (what a user must deploy; named in reasons)."""
        ...

    def describe(self, compute_environments: Sequence[str]) -> dict[str, GroupSize]:
        """The current size of each CE's group; CEs without a group are left out."""
        ...

    def apply(self, ce: ComputeEnvironment, desired_vcpus: int, current: GroupSize | None) -> int:
        """Size the CE's group (bounds minvCpus..maxvCpus, desired `desired_vcpus`); the desired capacity it has now.
        A missing group (`current` None) is NotFound."""
        ...
