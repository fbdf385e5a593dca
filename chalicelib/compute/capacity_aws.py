"""The Auto Scaling adapter of the CapacityGroups port (compute/capacity_port.py, ADR 0004): one Auto Scaling group
per managed EC2/SPOT compute environment.

Conventions shared with infra/ (which creates the groups):
- the group is named like the CE's ECS capacity provider, `batchplane-<ce>` (`ecs.capacity_provider_name`);
- its capacity unit is one vCPU: each instance type of its MixedInstancesPolicy carries `WeightedCapacity` = its vCPU
  count (or the group uses attribute-based selection with `DesiredCapacityType: vcpu`). MinSize / MaxSize /
  DesiredCapacity are therefore minvCpus / maxvCpus / desiredvCpus as they are; the group may overshoot the desired
  capacity by less than one instance, as Batch may overshoot maxvCpus;
- the capacity provider has managed scaling DISABLED: batchplane is the only thing that sets the desired capacity
  (ECS's target tracking would undo it). Scale-in happens only when the CE is idle (control/capacity.py), so the
  instances it removes run no batchplane task.

`apply` uses UpdateAutoScalingGroup with MinSize, MaxSize and DesiredCapacity together: SetDesiredCapacity alone
fails (ValidationError) whenever the desired value is outside the group's bounds, and the bounds move with
UpdateComputeEnvironment; one call keeps all three consistent. It is skipped when the group already says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws_clients import ClientFactory, LazyClient, translate
from chalicelib.compute.capacity_port import GroupSize
from chalicelib.compute.ecs import capacity_provider_name
from chalicelib.domain.errors import BatchplaneError, NotFound
from chalicelib.domain.model import ComputeEnvironment

DESCRIBE_PAGE = 100  # DescribeAutoScalingGroups takes at most 100 names per call


def group_name(compute_environment: str) -> str:
    """The Auto Scaling group of a managed EC2/SPOT compute environment."""
    return capacity_provider_name(compute_environment)


def _translate(e: ClientError | BotoCoreError, action: str) -> BatchplaneError:
    def classify(code: str, message: str) -> BatchplaneError | None:
        if code == "ValidationError" and "not found" in message.lower():
            return NotFound(f"Auto Scaling {action}: {message}")
        return None

    return translate(e, f"Auto Scaling {action}", classify)


class AsgCapacity:
    def __init__(self, client_factory: ClientFactory) -> None:
        self._client = LazyClient(client_factory)

    @property
    def client(self) -> Any:
        return self._client.get()

    def group_name(self, compute_environment: str) -> str:
        return group_name(compute_environment)

    def describe(self, compute_environments: Sequence[str]) -> dict[str, GroupSize]:
        """The current size of each CE's group; CEs without a group are left out."""
        names = {group_name(ce): ce for ce in compute_environments}
        found: dict[str, GroupSize] = {}
        wanted = list(names)
        for i in range(0, len(wanted), DESCRIBE_PAGE):
            params: dict[str, Any] = {"AutoScalingGroupNames": wanted[i : i + DESCRIBE_PAGE]}
            while True:
                try:
                    page = self.client.describe_auto_scaling_groups(**params)
                except (ClientError, BotoCoreError) as e:
                    raise _translate(e, "DescribeAutoScalingGroups") from e
                for group in page.get("AutoScalingGroups") or []:
                    ce = names.get(group["AutoScalingGroupName"])
                    if ce is not None:
                        found[ce] = GroupSize(
                            int(group["MinSize"]), int(group["MaxSize"]), int(group["DesiredCapacity"])
                        )
                if not page.get("NextToken"):
                    break
                params = {**params, "NextToken": page["NextToken"]}
        return found

    def apply(self, ce: ComputeEnvironment, desired_vcpus: int, current: GroupSize | None) -> int:
        """Size the CE's group: bounds minvCpus..maxvCpus, desired capacity `desired_vcpus`. Returns the desired
        capacity the group has now. A missing group is NotFound (the infrastructure has not created it)."""
        if current is None:
            raise NotFound(f"compute environment {ce.name} has no Auto Scaling group {group_name(ce.name)}")
        res = ce.compute_resources or {}
        low = int(res.get("minvCpus") or 0)
        high = max(low, int(res.get("maxvCpus") or 0), desired_vcpus)
        wanted = GroupSize(low, high, max(low, min(desired_vcpus, high)))
        if wanted == current:
            return current.desired
        try:
            self.client.update_auto_scaling_group(
                AutoScalingGroupName=group_name(ce.name),
                MinSize=wanted.min_size,
                MaxSize=wanted.max_size,
                DesiredCapacity=wanted.desired,
            )
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, "UpdateAutoScalingGroup") from e
        return wanted.desired

    def release(self, ce: ComputeEnvironment) -> None:
        """A deleted compute environment's group to zero instances (bounds 0..0, so nothing scales it up again): AWS
        terminates a deleted CE's instances. A group that does not exist has nothing to release."""
        current = self.describe([ce.name]).get(ce.name)
        if current is None or current == GroupSize(0, 0, 0):
            return
        try:
            self.client.update_auto_scaling_group(
                AutoScalingGroupName=group_name(ce.name), MinSize=0, MaxSize=0, DesiredCapacity=0
            )
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, "UpdateAutoScalingGroup") from e
