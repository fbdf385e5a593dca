"""Consumable resources (resource-aware scheduling): what a resource holds and how jobs take and return units. Pure.

A job names resources and the units of each it needs (`consumableResourceProperties`, or the submit override that
replaces the list). Its units are taken when it is dispatched (RUNNABLE -> STARTING) and settled when its attempt
ends (it leaves STARTING/RUNNING: SUCCEEDED, FAILED, or back to RUNNABLE for a retry). AWS's user guide ("Check
how many resources are in-use and available"): a REPLENISHABLE resource's units are added back to the available
quantity and the total stays; a NON_REPLENISHABLE resource's units are subtracted from both the total and the
available quantity and never added back. So availableQuantity = totalQuantity - inUseQuantity throughout.

The units move in the same conditional write as the job's own transition (store/jobs.py), so a job ending twice
returns them once, and two dispatchers can never spend the same units (docs/adr/0026-consumable-resources.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import ACTIVE, Job
from chalicelib.domain.validation import RESOURCE_NAME, fail

REPLENISHABLE = "REPLENISHABLE"
NON_REPLENISHABLE = "NON_REPLENISHABLE"
TYPES = (REPLENISHABLE, NON_REPLENISHABLE)
OPERATIONS = ("SET", "ADD", "REMOVE")
KIND = "consumable-resource"  # the ARN's resource type
# "You can specify up to 5 resources for each job you define" (user guide, Specify the resources needed to run a job).
MAX_PER_JOB = 5
# AWS documents no statusReason for a job waiting for consumable resources; these are batchplane's own, in AWS's
# CODE - text shape. Waiting for units is CAPACITY (it passes when units are returned or added); a resource deleted
# after the job was submitted is a MISCONFIGURATION (the job can never run until it is cancelled).
WAITING_FOR_RESOURCES = (
    "CAPACITY:CONSUMABLE_RESOURCE - The job is at the head of the job queue, waiting for consumable resource(s) to "
    "become available: {needs}"
)
RESOURCE_MISSING = (
    "MISCONFIGURATION:CONSUMABLE_RESOURCE - The consumable resource {name} the job requires does not exist."
)


@dataclass(frozen=True)
class ConsumableResource:
    name: str
    arn: str
    resource_type: str
    total_quantity: int
    created_at: int
    in_use_quantity: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    version: int = 0

    @property
    def available_quantity(self) -> int:
        return max(0, self.total_quantity - self.in_use_quantity)


def name_of_arn(arn: str) -> str:
    return arn.rpartition("/")[2]


# -- requests --------------------------------------------------------------------------------------------------


def check_create(req: Mapping[str, Any]) -> None:
    name = req["consumableResourceName"]
    if not RESOURCE_NAME.fullmatch(name):
        raise fail("consumableResourceName", "must be 1-128 letters, numbers, hyphens and underscores")
    if req.get("totalQuantity") is not None and req["totalQuantity"] < 0:
        raise fail("totalQuantity", f"must be non-negative; got {req['totalQuantity']}")
    kind = req.get("resourceType")
    if kind is not None and kind not in TYPES:
        raise fail("resourceType", f"must be REPLENISHABLE or NON_REPLENISHABLE; got {kind!r}")


def updated(resource: ConsumableResource, operation: str | None, quantity: int | None) -> ConsumableResource:
    """UpdateConsumableResource: SET, ADD or REMOVE `quantity` on totalQuantity (SET when no operation is given).
    REMOVE may not take the total below zero; a total below the units in use leaves nothing available until jobs
    return theirs."""
    op = operation or "SET"
    if op not in OPERATIONS:
        raise fail("operation", f"must be SET, ADD or REMOVE; got {op!r}")
    if quantity is None:
        raise fail("quantity", f"is required for operation {op}")
    if quantity < 0:
        raise fail("quantity", f"must be non-negative; got {quantity}")
    total = {"SET": quantity, "ADD": resource.total_quantity + quantity}.get(op, resource.total_quantity - quantity)
    if total < 0:
        raise fail(
            "quantity",
            f"REMOVE {quantity} would make the totalQuantity of {resource.name} negative (it is "
            f"{resource.total_quantity})",
        )
    return dataclasses.replace(resource, total_quantity=total)


def requirements(props: Mapping[str, Any] | None, field_name: str) -> list[tuple[str, int]]:
    """The (name or ARN, quantity) pairs of a consumableResourceProperties, checked: at most MAX_PER_JOB, each named
    once, each quantity at least 1."""
    entries = (props or {}).get("consumableResourceList") or []
    if len(entries) > MAX_PER_JOB:
        raise fail(f"{field_name}.consumableResourceList", f"may name at most {MAX_PER_JOB} resources")
    out: list[tuple[str, int]] = []
    for i, entry in enumerate(entries):
        where = f"{field_name}.consumableResourceList[{i}]"
        ref, quantity = entry.get("consumableResource"), entry.get("quantity")
        if not ref:
            raise fail(f"{where}.consumableResource", "is required")
        if quantity is None or quantity < 1:
            raise fail(f"{where}.quantity", f"must be at least 1; got {quantity}")
        if any(name_of_arn(ref) == name_of_arn(seen) for seen, _ in out):
            raise fail(f"{where}.consumableResource", f"names {ref} more than once")
        out.append((ref, int(quantity)))
    return out


def wire(needs: Mapping[str, int]) -> dict[str, Any]:
    """A job's needs (ARN -> quantity) as the wire's ConsumableResourceProperties."""
    return {"consumableResourceList": [{"consumableResource": a, "quantity": q} for a, q in needs.items()]}


# -- jobs taking and returning units ---------------------------------------------------------------------------


def holds(job: Job) -> bool:
    """Whether the job holds its units: an attempt is in flight (an array parent never runs one)."""
    return bool(job.consumable_resources) and job.status in ACTIVE and job.current is not None


class Unavailable(InvalidRequest):
    """A claim's units were taken by another job since the dispatcher looked (or the resource was deleted): the
    claim is not made and the next cycle re-plans. Never reaches the wire (control/react.py catches it)."""


def take(resource: ConsumableResource | None, quantity: int, name: str) -> ConsumableResource:
    if resource is None or resource.available_quantity < quantity:
        raise Unavailable(f"consumable resource {name}: {quantity} unit(s) are not available")
    return dataclasses.replace(resource, in_use_quantity=resource.in_use_quantity + quantity)


def give_back(resource: ConsumableResource, quantity: int) -> ConsumableResource:
    """The end of an attempt: its units leave inUse; a NON_REPLENISHABLE resource's leave the total with them."""
    in_use = max(0, resource.in_use_quantity - quantity)
    if resource.resource_type == NON_REPLENISHABLE:
        return dataclasses.replace(
            resource, in_use_quantity=in_use, total_quantity=max(0, resource.total_quantity - quantity)
        )
    return dataclasses.replace(resource, in_use_quantity=in_use)


def moves(before: Job | None, after: Job) -> int:
    """+1: the write takes the job's units; -1: it returns them; 0: nothing moves."""
    was, now = before is not None and holds(before), holds(after)
    return (1 if now else -1) if was != now else 0


# -- the scheduler's view --------------------------------------------------------------------------------------


def missing_or_short(needs: tuple[tuple[str, int], ...], available: Mapping[str, int]) -> tuple[str | None, str | None]:
    """(the reason a job cannot take its units now, or None; whether that is because a resource is gone). Pure step
    of domain/scheduling.py."""
    for name, _ in needs:
        if name not in available:
            return RESOURCE_MISSING.format(name=name), name
    if any(available[name] < n for name, n in needs):
        # Every need is named (not only the short ones), so the reason does not change while the job waits.
        return WAITING_FOR_RESOURCES.format(needs=", ".join(f"{name} ({n} needed)" for name, n in needs)), None
    return None, None
