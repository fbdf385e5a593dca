"""GetJobQueueSnapshot: the front of a queue in the order the dispatcher takes it, and what the queue uses."""

from __future__ import annotations

from typing import Any

from chalicelib.control import resources
from chalicelib.control.context import Services
from chalicelib.domain.jobs import ACTIVE, RUNNABLE, Job
from chalicelib.store.jobs import order_key

FRONT = 100


def runnable_in_order(svc: Services, queue: str, limit: int) -> list[Job]:
    """The first `limit` RUNNABLE jobs of a queue, top-level jobs and array children merged in FIFO order."""
    top = svc.jobs.in_queue(queue, RUNNABLE, limit=limit)
    kids = svc.jobs.in_queue(queue, RUNNABLE, children=True, limit=limit)
    return sorted(top + kids, key=order_key)[:limit]


def snapshot(svc: Services, ref: str) -> dict[str, Any]:
    queue = resources.get_jq(svc, ref)
    now = svc.clock.now_ms()
    front = runnable_in_order(svc, queue.name, FRONT)
    used = 0.0
    shares: dict[str, float] = {}
    for status in ACTIVE:
        for children in (False, True):
            for job in svc.jobs.iter_queue(queue.name, status, children=children):
                used += job.vcpus
                if job.share_identifier:
                    shares[job.share_identifier] = shares.get(job.share_identifier, 0.0) + job.vcpus
    utilization: dict[str, Any] = {
        "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": used}],
        "lastUpdatedAt": now,
    }
    if queue.scheduling_policy_arn:
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:20]
        utilization["fairshareUtilization"] = {
            "activeShareCount": len(shares),
            "topCapacityUtilization": [
                {"shareIdentifier": s, "capacityUsage": [{"capacityUnit": "VCPU", "quantity": q}]} for s, q in top
            ],
        }
    return {
        "frontOfQueue": {
            "jobs": [{"jobArn": j.arn, "earliestTimeAtPosition": j.updated_at} for j in front],
            "lastUpdatedAt": now,
        },
        "queueUtilization": utilization,
    }
