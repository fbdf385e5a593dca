"""Consumable resources end to end: real processes under the local runtime, through the stock boto3 batch client.
A resource of 2 units shared by jobs needing 1 each: never more than 2 run at once although the compute environment
has room for all of them, every job succeeds, and the units are all back at the end. Overlap is asserted on the
startedAt/stoppedAt batchplane records, never on wall-clock speed; every wait is bounded."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.cli import main
from chalicelib.runtime.local import LocalRuntime
from tests.e2e.conftest import Client, register, setup_queue, sh, submit, unique, wait_for, wait_terminal

pytestmark = pytest.mark.e2e


def max_overlap(jobs: list[dict[str, Any]]) -> int:
    """The most attempts running at once (a stop at the same ms as a start counts first)."""
    edges = []
    for job in jobs:
        for attempt in job["attempts"]:
            edges += [(attempt["startedAt"], 1), (attempt["stoppedAt"], -1)]
    running = peak = 0
    for _, delta in sorted(edges):
        running += delta
        peak = max(peak, running)
    return peak


def test_jobs_sharing_a_resource_never_hold_more_units_than_it_has(batch: Client) -> None:
    # GIVEN a CE with room for 6 jobs, a resource of 2 units, and 6 jobs needing 1 unit each
    queue, _ = setup_queue(batch, max_vcpus=6)
    resource = unique("licence")
    batch.create_consumable_resource(consumableResourceName=resource, totalQuantity=2)
    needs = {"consumableResourceList": [{"consumableResource": resource, "quantity": 1}]}
    jd = register(batch, unique("nap"), sh("sleep 1"), consumableResourceProperties=needs)
    ids = [submit(batch, queue, jd, f"j{i}") for i in range(6)]

    # WHEN they run  THEN the third waits at the head of the queue for the resource while the first two hold it
    # (its reason is written once it has waited the engine's grace, 250 ms, well within the first jobs' second)
    third = wait_for(
        batch,
        ids[2:3],
        lambda j: j["status"] in ("SUCCEEDED", "FAILED") or "CONSUMABLE_RESOURCE" in str(j.get("statusReason")),
        "waiting for units",
        30,
    )[ids[2]]
    assert str(third.get("statusReason")).startswith("CAPACITY:CONSUMABLE_RESOURCE - "), third
    jobs = wait_terminal(batch, ids, timeout=60)

    # THEN all succeed, never more than 2 ran at once, and both units are back
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert max_overlap(list(jobs.values())) <= 2
    got = batch.describe_consumable_resource(consumableResource=resource)
    assert (got["totalQuantity"], got["inUseQuantity"], got["availableQuantity"]) == (2, 0, 2)


def test_cli_describe_shows_the_resources_a_job_needs_and_what_is_available(
    batch: Client, runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job needing 3 units of a resource that has 2: it waits RUNNABLE
    monkeypatch.setenv("COLUMNS", "200")
    queue, _ = setup_queue(batch)
    resource = unique("seats")
    batch.create_consumable_resource(consumableResourceName=resource, totalQuantity=2)
    jd = register(batch, unique("big"), ["true"])
    needs = {"consumableResourceList": [{"consumableResource": resource, "quantity": 3}]}
    job_id = submit(batch, queue, jd, "greedy", consumableResourcePropertiesOverride=needs)
    wait_for(batch, [job_id], lambda j: "CONSUMABLE_RESOURCE" in str(j.get("statusReason")), "waiting", 15)

    # WHEN `batchplane describe` shows it
    capsys.readouterr()
    assert main(["describe", job_id, "--endpoint", runtime.endpoint]) == 0
    out = capsys.readouterr().out

    # THEN it says why it waits and lists the resource: needs 3, 2 available of 2, REPLENISHABLE
    assert "CAPACITY:CONSUMABLE_RESOURCE" in out and "Consumable resources" in out
    row = next(line for line in out.splitlines() if resource in line and "REPLENISHABLE" in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells == [resource, "3", "2", "0", "2", "REPLENISHABLE"]
