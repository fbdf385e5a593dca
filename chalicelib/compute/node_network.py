"""Where a multi-node job's nodes run and how they reach the main node (compute/nodes.py, docs/adr/0027): on this
host's loopback (process executor), or on a Docker bridge network of their own per attempt."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol

from chalicelib.compute.port import TaskSpec

log = logging.getLogger("batchplane.nodes")

LABEL_NODES = "batchplane.nodes-of"  # on a job's node network: the job id


class NodeNetwork(Protocol):
    def create(self, spec: TaskSpec) -> str | None:
        """The network the attempt's node containers join (None: processes on this host)."""
        ...

    def name(self, spec: TaskSpec) -> str | None:
        """The attempt's network, whether or not it exists (None: processes on this host)."""
        ...

    def address(self, node: TaskSpec) -> str:
        """The started node's IPv4 address, as its peers reach it."""
        ...

    def remove(self, spec: TaskSpec) -> None: ...


class Loopback:
    """The process executor: every node is a process of this host, at 127.0.0.1."""

    def create(self, spec: TaskSpec) -> str | None:
        return None

    def name(self, spec: TaskSpec) -> str | None:
        return None

    def address(self, node: TaskSpec) -> str:
        return "127.0.0.1"

    def remove(self, spec: TaskSpec) -> None:
        return None


class DockerNodes:
    """The Docker executor: a bridge network per attempt; a node's address is its container's on that network."""

    def __init__(self, client: Any, state_id: str, container_name: Callable[[str, int], str], label: str) -> None:
        self.client = client
        self.state_id = state_id
        self.container_name = container_name
        self.label = label  # the label naming the server's state (docker.LABEL_STATE)

    def name(self, spec: TaskSpec) -> str:
        return f"batchplane-{self.state_id}-{spec.job_id.replace(':', '_')}-{spec.attempt}-nodes"

    def create(self, spec: TaskSpec) -> str | None:
        name = self.name(spec)
        found = self.client.networks(names=[name])  # (a relaunch after a crash finds it; `names` matches parts)
        if not any(n.get("Name") == name for n in found):
            labels = {self.label: self.state_id, LABEL_NODES: spec.job_id}
            self.client.create_network(name, driver="bridge", labels=labels)
        return name

    def address(self, node: TaskSpec) -> str:
        info = self.client.inspect_container(self.container_name(node.job_id, node.attempt))
        return str(info["NetworkSettings"]["Networks"][node.network]["IPAddress"])

    def remove(self, spec: TaskSpec) -> None:
        self.client.remove_network(self.name(spec))

    def reap(self, keep: Callable[[], Collection[str]] = frozenset) -> int:
        """Remove node networks a crash left behind (those still in use by a running container stay, and so do
        those named by `keep()`, read after the list: the networks of the attempts recovered or launched since)."""
        found = self.client.networks(filters={"label": [f"{self.label}={self.state_id}", LABEL_NODES]})
        kept = keep()
        removed = 0
        for n in found:
            if n.get("Name") in kept:
                continue
            try:
                self.client.remove_network(n["Id"])
                removed += 1
            except Exception:
                log.debug("node network %s still in use", n.get("Name"))
        return removed
