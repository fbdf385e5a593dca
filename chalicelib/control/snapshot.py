"""GetJobQueueSnapshot: the front of a queue in the order the dispatcher takes it, and what the queue uses.

The order comes from `dispatch.ordered_runnable`, the dispatcher's own snapshot and ordering (FIFO or fair share),
so the front shown is the order jobs will start in as long as nothing changes.
"""

from __future__ import annotations

from typing import Any

from chalicelib.control import resources
from chalicelib.control.context import Services
from chalicelib.control.dispatch import active_jobs, ordered_runnable
from chalicelib.domain.runs import held_vcpus

FRONT = 100
TOP_SHARES = 20


def snapshot(svc: Services, ref: str) -> dict[str, Any]:
    queue = resources.get_jq(svc, ref)
    now = svc.clock.now_ms()
    active = list(active_jobs(svc, queue.name))
    front = ordered_runnable(svc, queue, active, now)[:FRONT]
    used = sum(held_vcpus(active).values())  # (a run's children hold one slot: domain/runs.py)
    shares: dict[str, float] = {}
    for job in active:
        if job.share_identifier:
            shares[job.share_identifier] = shares.get(job.share_identifier, 0.0) + job.vcpus
    utilization: dict[str, Any] = {
        "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": used}],
        "lastUpdatedAt": now,
    }
    if queue.scheduling_policy_arn:
        top = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SHARES]
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
