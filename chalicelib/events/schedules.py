"""The EventBridge Scheduler adapter of the SchedulePort (events/port.py): where schedule triggers tick on AWS.

- `EventBridgeSchedules`: one EventBridge Scheduler schedule per trigger, named after it, in its own schedule group
  (created when missing). Its target is the Lambda that calls `control.triggers.on_schedule`, with the input
  `{"trigger": <name>}` (what runtime/aws/runtime.py reads). The boto3 client is created lazily (never at import), and
  botocore errors come back as domain errors: an expression AWS refuses is InvalidRequest naming the field;
  throttling is Throttled.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws_clients import LazyClient, error_code, translate
from chalicelib.domain.errors import BatchplaneError, InvalidRequest
from chalicelib.domain.triggers import ScheduleSource, Trigger

SCHEDULE_GROUP = "batchplane"


class EventBridgeSchedules:
    def __init__(
        self,
        target_arn: str,
        role_arn: str,
        *,
        group: str = SCHEDULE_GROUP,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.target_arn = target_arn
        self.role_arn = role_arn
        self.group = group
        self.region = region
        self._client = LazyClient(lambda: client if client is not None else _scheduler_client(region))
        self._group_ready = False

    @property
    def client(self) -> Any:
        return self._client.get()

    def register(self, trigger: Trigger) -> None:
        source = trigger.source
        if not isinstance(source, ScheduleSource):
            return
        self._ensure_group()
        request = {
            "Name": trigger.name,
            "GroupName": self.group,
            "ScheduleExpression": source.expression,
            "ScheduleExpressionTimezone": source.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps({"trigger": trigger.name}),
            },
        }
        try:
            self.client.create_schedule(**request)
        except Exception as e:
            if error_code(e) != "ConflictException":
                raise _domain_error(e) from e
            try:  # left over from a trigger of the same name whose deletion did not finish
                self.client.update_schedule(**request)
            except Exception as again:
                raise _domain_error(again) from again

    def unregister(self, name: str) -> None:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.group)
        except Exception as e:
            if error_code(e) != "ResourceNotFoundException":
                raise _domain_error(e) from e

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.get_schedule_group(Name=self.group)
        except Exception as e:
            if error_code(e) != "ResourceNotFoundException":
                raise _domain_error(e) from e
            try:
                self.client.create_schedule_group(Name=self.group)
            except Exception as created:
                if error_code(created) != "ConflictException":  # created concurrently: fine
                    raise _domain_error(created) from created
        self._group_ready = True


def _classify(code: str, message: str) -> BatchplaneError | None:
    if code == "ValidationException":
        return InvalidRequest(f"source.schedule: EventBridge Scheduler rejected the schedule: {message}")
    return None


def _domain_error(e: Exception) -> BatchplaneError:
    return translate(e, "EventBridge Scheduler", _classify)


def _scheduler_client(region: str | None) -> Any:
    import boto3

    return boto3.client("scheduler", region_name=region)
