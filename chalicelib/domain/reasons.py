"""Batch's statusReason texts that more than one part of batchplane writes or matches (spec §4.7, §6.2).

They are AWS Batch's (and ECS's) words, copied unchanged because users' retry rules match them
(`evaluateOnExit.onStatusReason`): the ECS translation (compute/ecs_events.py), the launchers, the sweep
(control/sweep.py) and the local engine all write the same text for the same cause. Kept in the domain so that
control/ and runtime/ need no adapter for them (issue 15). The reasons of the job's own state machine
(`ESSENTIAL_EXITED`, `TIMEOUT_REASON`, ...) are in domain/jobs.py.
"""

from __future__ import annotations

FARGATE_SPOT_INTERRUPTED = "Your Spot Task was interrupted."  # ECS's stoppedReason for a Fargate Spot reclaim
TASK_FAILED_TO_START = "Task failed to start"


def host_terminated_reason(instance_id: str) -> str:
    """The statusReason of a job whose EC2 host went away (spec §4.7)."""
    return f"Host EC2 (instance {instance_id}) terminated."


# A RUNNING attempt whose task ECS no longer knows (DescribeTasks: MISSING, about an hour after it stopped) when the
# sweep reads it: its STOPPED event was lost and its end cannot be read any more. batchplane's words (AWS Batch
# never loses a task's end); "Task stopped*" is what a retry rule would match.
TASK_END_UNKNOWN = "Task stopped: ECS no longer knows the task; its end was not observed"
