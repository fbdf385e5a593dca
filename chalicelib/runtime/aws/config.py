"""The AWS runtime's settings: every BATCHPLANE_* variable a Lambda reads, read once (`AwsConfig.from_environment`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from chalicelib.compute.ecs import DEFAULT_LOG_GROUP
from chalicelib.control.context import Settings
from chalicelib.domain.validation import Limits, limits_from_text
from chalicelib.runtime import stream

ENV_RUNTIME = "BATCHPLANE_RUNTIME"  # "aws" in every Lambda (.chalice/config.json)


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AwsConfig:
    table: str
    region: str
    account: str
    cluster: str
    dispatch_queue_url: str
    event_bus: str = "default"
    event_source: str = "batchplane"
    log_group: str | None = DEFAULT_LOG_GROUP
    execution_role_arn: str | None = None
    dynamodb_endpoint: str | None = None  # tests, DynamoDB Local
    # EventBridge Scheduler, for schedule triggers: the on_schedule Lambda, the role Scheduler invokes it with, and
    # the stack's schedule group. Without a target, schedule triggers cannot tick on AWS.
    schedule_target_arn: str | None = None
    scheduler_role_arn: str | None = None
    schedule_group: str = "batchplane"
    # RunTask's clientToken makes a launch idempotent for 24 h; the ListTasks precheck (2 calls per launch) also
    # covers emulators that ignore the token. Off on AWS.
    ecs_precheck: bool = False
    # Which "Batch Job State Change" events go to EventBridge: ALL, TERMINAL (SUCCEEDED/FAILED) or NONE (ADR 0010)
    state_change_events: str = stream.DEFAULT_STATE_CHANGE_EVENTS
    # A deleted queue / compute environment is removed this long after its DELETING marker (docs/adr/0021): more
    # than the API Lambda's timeout (30 s) plus the job index's lag, so no SubmitJob still in flight can land after.
    deletion_grace_seconds: float = Settings.deletion_grace_ms / 1000
    # AWS's quotas, some lifted by the stack parameter `Limits` (BATCHPLANE_LIMITS: "max-array-size=1000000 ...")
    limits: Limits = field(default_factory=Limits)
    # An array's children are written this many ahead of its finished ones (docs/adr/0031; 0: all at once)
    array_window: int = Settings.array_window

    def __post_init__(self) -> None:
        if self.state_change_events not in stream.STATE_CHANGE_EVENTS:
            raise ValueError(
                f"BATCHPLANE_STATE_CHANGE_EVENTS must be one of {', '.join(stream.STATE_CHANGE_EVENTS)}, "
                f"not {self.state_change_events!r}"
            )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> AwsConfig:
        e = os.environ if env is None else env
        return cls(
            table=e["BATCHPLANE_TABLE"],
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            account=e.get("BATCHPLANE_ACCOUNT_ID", "123456789012"),
            cluster=e.get("BATCHPLANE_CLUSTER", "batchplane"),
            dispatch_queue_url=e.get("BATCHPLANE_DISPATCH_QUEUE_URL", ""),
            event_bus=e.get("BATCHPLANE_EVENT_BUS") or "default",
            event_source=e.get("BATCHPLANE_EVENT_SOURCE") or "batchplane",
            log_group=e.get("BATCHPLANE_LOG_GROUP") or DEFAULT_LOG_GROUP,
            execution_role_arn=e.get("BATCHPLANE_EXECUTION_ROLE_ARN") or None,
            dynamodb_endpoint=e.get("BATCHPLANE_DYNAMODB_ENDPOINT") or None,
            schedule_target_arn=e.get("BATCHPLANE_SCHEDULE_TARGET_ARN") or None,
            scheduler_role_arn=e.get("BATCHPLANE_SCHEDULER_ROLE_ARN") or None,
            schedule_group=e.get("BATCHPLANE_SCHEDULE_GROUP") or "batchplane",
            ecs_precheck=_flag(e.get("BATCHPLANE_ECS_PRECHECK"), False),
            state_change_events=(e.get("BATCHPLANE_STATE_CHANGE_EVENTS") or stream.DEFAULT_STATE_CHANGE_EVENTS)
            .strip()
            .upper(),
            deletion_grace_seconds=float(
                e.get("BATCHPLANE_DELETION_GRACE_SECONDS") or Settings.deletion_grace_ms / 1000
            ),
            limits=limits_from_text(e.get("BATCHPLANE_LIMITS")),
            array_window=int(e.get("BATCHPLANE_ARRAY_WINDOW") or Settings.array_window),
        )

    @property
    def settings(self) -> Settings:
        """The Services' settings on AWS."""
        return Settings(
            account=self.account,
            default_region=self.region,
            ecs_cluster=self.cluster,
            deletion_grace_ms=int(self.deletion_grace_seconds * 1000),
            price_jobs=True,
            limits=self.limits,
            array_window=self.array_window,
        )
