"""Trigger persistence (docs/adr/0002 layout): pk "TRG", sk the trigger name; object triggers also carry gsi1
("TRGS3#<bucket>", name), so an S3 event finds the triggers of its bucket by key, never by a scan."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.triggers import S3Source, ScheduleSource, Source, Trigger
from chalicelib.store.port import Item, ItemStore

TRIGGER_PK = "TRG"


def bucket_partition(bucket: str) -> str:
    return f"TRGS3#{bucket}"


def _source_body(source: Source) -> dict[str, Any]:
    if isinstance(source, S3Source):
        return {"s3": {"bucket": source.bucket, "prefix": source.prefix, "suffix": source.suffix}}
    return {"schedule": {"expression": source.expression, "timezone": source.timezone}}


def _source(body: dict[str, Any]) -> Source:
    if "s3" in body:
        return S3Source(**body["s3"])
    return ScheduleSource(**body["schedule"])


def trigger_item(trigger: Trigger) -> Item:
    body = {
        "name": trigger.name,
        "arn": trigger.arn,
        "job_queue": trigger.job_queue,
        "job_definition": trigger.job_definition,
        "job_name": trigger.job_name,
        "source": _source_body(trigger.source),
        "created_at": trigger.created_at,
        "parameters": trigger.parameters,
        "container_overrides": trigger.container_overrides,
    }
    gsi1 = (bucket_partition(trigger.source.bucket), trigger.name) if isinstance(trigger.source, S3Source) else None
    return Item(TRIGGER_PK, trigger.name, body, gsi1=gsi1)


def trigger_from_item(item: Item) -> Trigger:
    b = dict(item.body)
    b["source"] = _source(b["source"])
    return Trigger(**b, version=item.version)


class TriggerRepository:
    def __init__(self, items: ItemStore) -> None:
        self.items = items

    def get(self, name: str) -> Trigger | None:
        item = self.items.get(TRIGGER_PK, name)
        return trigger_from_item(item) if item else None

    def page(self, after: str | None = None, limit: int = 100) -> list[Trigger]:
        return [trigger_from_item(i) for i in self.items.query("main", TRIGGER_PK, after=after, limit=limit)]

    def all(self, page: int = 500) -> list[Trigger]:
        found: list[Trigger] = []
        after: str | None = None
        while True:
            batch = self.page(after, page)
            found += batch
            if len(batch) < page:
                return found
            after = batch[-1].name

    def for_bucket(self, bucket: str, page: int = 500) -> list[Trigger]:
        found: list[Trigger] = []
        after: str | None = None
        while True:
            items = self.items.query("gsi1", bucket_partition(bucket), after=after, limit=page)
            found += [trigger_from_item(i) for i in items]
            if len(items) < page:
                return found
            after = str(items[-1].body["name"])

    def create(self, trigger: Trigger) -> Trigger:
        """Conflict if a trigger of that name exists."""
        return trigger_from_item(self.items.put(trigger_item(trigger), None))

    def delete(self, trigger: Trigger) -> None:
        self.items.delete(TRIGGER_PK, trigger.name, trigger.version)
