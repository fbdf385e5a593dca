"""The EventBridge adapter of the EventSink port: "Batch Job State Change" events on an event bus (PutEvents).

EventBridge refuses PutEvents entries whose source starts with `aws.` (only AWS services may use those), so the
events keep Batch's detail-type and detail (JobDetail, spec §6.1) but carry the source `batchplane` (configurable).
A rule written for AWS Batch, `{"source": ["aws.batch"], "detail-type": ["Batch Job State Change"]}`, needs its
source changed to match. The event bus is the account's default bus unless configured.

The boto3 client is made on first use (`client_factory`), never at import. `publish_all` sends up to ten entries
per call (PutEvents' limit) and raises `EventsUnavailable` naming the first entry EventBridge did not take, so
the stream handler can retry from exactly that record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws_clients import ClientFactory, LazyClient
from chalicelib.domain.errors import StoreUnavailable

DEFAULT_SOURCE = "batchplane"
MAX_ENTRIES = 10  # PutEvents entries per request
MAX_REQUEST_BYTES = 256 * 1024  # PutEvents request size (entries' sizes summed as EventBridge counts them)


@dataclass(frozen=True)
class Event:
    detail_type: str
    resources: list[str]
    detail: dict[str, Any]


class EventsUnavailable(StoreUnavailable):
    """EventBridge did not take every entry; `index` is the first one it refused (in the order given)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it towards the 256 KB limit (Time, Source, DetailType, Detail,
    Resources; EventBusName is not counted)."""
    size = 14  # Time
    size += len(entry["Source"].encode()) + len(entry["DetailType"].encode()) + len(entry["Detail"].encode())
    size += sum(len(r.encode()) for r in entry["Resources"])
    return size


class EventBridgeSink:
    def __init__(self, client_factory: ClientFactory, *, bus: str = "default", source: str = DEFAULT_SOURCE) -> None:
        self._client = LazyClient(client_factory)
        self.bus = bus
        self.source = source

    @property
    def client(self) -> Any:
        return self._client.get()

    def entry(self, event: Event) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": event.detail_type,
            "Resources": list(event.resources),
            "Detail": json.dumps(event.detail, separators=(",", ":")),
            "EventBusName": self.bus,
        }

    # -- EventSink --------------------------------------------------------------------------------------------

    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        self.publish_all([Event(detail_type, resources, detail)])

    # -- batches ----------------------------------------------------------------------------------------------

    def publish_all(self, events: Sequence[Event]) -> None:
        """Send every event, in order, in as few PutEvents calls as the limits allow."""
        entries = [self.entry(e) for e in events]
        start = 0
        while start < len(entries):
            end, size = start, 0
            while end < len(entries) and end - start < MAX_ENTRIES:
                size += entry_size(entries[end])
                if size > MAX_REQUEST_BYTES and end > start:
                    break
                end += 1
            self._put(entries[start:end], start)
            start = end

    def _put(self, entries: list[dict[str, Any]], offset: int) -> None:
        try:
            response = self.client.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as e:
            raise EventsUnavailable(f"EventBridge PutEvents failed: {e}", offset) from e
        if response.get("FailedEntryCount"):
            results = response.get("Entries") or []
            failed = next((i for i, r in enumerate(results) if r.get("ErrorCode")), 0)
            code = results[failed].get("ErrorCode") if failed < len(results) else None
            message = results[failed].get("ErrorMessage") if failed < len(results) else None
            raise EventsUnavailable(
                f"EventBridge refused {response['FailedEntryCount']} of {len(entries)} entries: {code}: {message}",
                offset + failed,
            )
