"""What app.py's Lambda decorators carry: the event sources and patterns of each entry point (docs/adr/0009)."""

from __future__ import annotations

from typing import Any

from chalicelib.compute import ecs_events

# -- what app.py's decorators carry ---------------------------------------------------------------------------------
# The table's stream and the wake queue are created by infra/resources.json, which `chalice package
# --merge-template` merges over Chalice's template: it replaces these placeholders with the real ARNs (GetAtt), and
# adds the cluster to the ECS pattern. tests/infra checks that no placeholder survives packaging.
STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/batchplane/stream/set-by-infra-resources-json"
DISPATCH_QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:set-by-infra-resources-json.fifo"
SWEEP_RATE = "rate(1 minute)"
ECS_TASK_PATTERN: dict[str, Any] = ecs_events.task_pattern()  # RUNNING and STOPPED only: 2 of a task's 9 events
EC2_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2"],
    "$or": [
        {"detail-type": [ecs_events.SPOT_INTERRUPTION_WARNING]},
        {"detail-type": [ecs_events.INSTANCE_STATE_CHANGE], "detail": {"state": ["terminated"]}},
    ],
}
S3_OBJECT_CREATED_PATTERN: dict[str, Any] = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
