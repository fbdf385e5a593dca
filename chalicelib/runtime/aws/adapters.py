"""Two small pieces the composition root (runtime/plane.py) builds the AWS plane with: the SQS FIFO queue that wakes
the dispatcher (`WakeQueue`, docs/adr/0009), and the ECS launcher's brief cache of compute environments
(`ComputeEnvironments`)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import StoreUnavailable
from chalicelib.domain.model import ComputeEnvironment
from chalicelib.runtime.aws.clients import Clients

log = logging.getLogger("batchplane.aws")

DISPATCH_GROUP = "dispatch"  # the one message group of the FIFO wake queue: one dispatcher at a time
CE_CACHE_SECONDS = 60.0


class WakeQueue:
    """Wake-ups for the `dispatch` Lambda: messages of one group of the FIFO queue, so one cycle runs at a time."""

    def __init__(self, clients: Clients, queue_url: str) -> None:
        self.clients = clients
        self.queue_url = queue_url

    def send(self, dedup: str | None = None) -> None:
        """Ask for a dispatch cycle. Raises StoreUnavailable when SQS does not take the message."""
        try:
            self.clients.client("sqs").send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps({"wake": True}),
                MessageGroupId=DISPATCH_GROUP,
                MessageDeduplicationId=dedup or uuid.uuid4().hex,
            )
        except (ClientError, BotoCoreError) as e:
            raise StoreUnavailable(f"SQS SendMessage (dispatch wake) failed: {e}") from e

    def wake(self) -> None:
        """Services.wake: best effort (the write that asked for it is committed; the sweep wakes every minute)."""
        try:
            self.send()
        except StoreUnavailable:
            log.exception("waking the dispatcher failed; the sweep will")


class ComputeEnvironments:
    """The ECS launcher's CE lookup, cached briefly: a dispatch cycle launches many jobs on the same few CEs.
    `read` is bound late (the repository is built after the launcher that uses this)."""

    def __init__(self, read: Callable[[str], ComputeEnvironment | None]) -> None:
        self.read = read
        self._ces: dict[str, tuple[float, ComputeEnvironment | None]] = {}

    def get(self, name: str) -> ComputeEnvironment | None:
        now = time.monotonic()
        hit = self._ces.get(name)
        if hit is not None and now - hit[0] < CE_CACHE_SECONDS:
            return hit[1]
        ce = self.read(name)
        self._ces[name] = (now, ce)
        return ce
