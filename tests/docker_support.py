"""The `docker_engine` fixture: a docker-py client of a Docker engine that answers, for the container tests.

Without an engine the tests that ask for it skip, saying how to get one; with the environment variable CI set they
fail instead (CI must run them). `remove_containers(state_dir)` removes what a test's server left behind.
`EngineGate`: a proxy in front of the engine that holds a server's container creates until the test lets them go.
`holds_the_credentials_endpoint(runtime or vendor)`: skips (fails with CI set) when the server could bind no port on
169.254.170.2 (docs/adr/0037: another one holding port 80 is no reason any more). `port_80_held(client)`: holds
169.254.170.2:80 itself, so that a server started meanwhile must fall back to another port.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from chalicelib.compute.credentials import LocalCredentialVendor
    from chalicelib.runtime.local import LocalRuntime

HOW = "no Docker engine answers ({why}); start one with `bash scripts/docker-up.sh` (or set DOCKER_HOST)"
TEST_IMAGE = "busybox:latest"  # built locally by scripts/docker-up.sh: no registry is reachable


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    why: str | None = None
    client = None
    try:
        from chalicelib.compute import docker_engine as engine

        client = engine.connect(engine.PING_TIMEOUT_S)
        client.timeout = engine.API_TIMEOUT_S
        client.inspect_image(TEST_IMAGE)
    except ImportError as e:
        why = f"the docker Python package is missing: {e}"
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        message = HOW.format(why=why)
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the container tests must run: {message}")
        pytest.skip(message)
    yield client
    client.close()


def holds_the_credentials_endpoint(held_by: LocalRuntime | LocalCredentialVendor) -> None:
    """Containers get credentials from a server listening on 169.254.170.2: on port 80, else on another port
    (ADR 0017, 0037). Only when it could bind none (the address is not on this host: a remote engine) does this
    server (or vendor) grant nothing: skipped, or failed when CI is set."""
    vendor = cast("LocalCredentialVendor", getattr(held_by, "credentials", held_by))  # (a runtime's vendor)
    if vendor.network is None:
        message = f"no container credentials endpoint: {vendor.note}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set: {message}")
        pytest.skip(message)


@contextlib.contextmanager
def port_80_held(client: Any) -> Iterator[None]:
    """169.254.170.2:80 taken by a listening socket of the test (the credentials network made first, so that the
    address exists on this host): a server or vendor started meanwhile cannot bind it, as when another server holds it
    or it may not bind ports below 1024, and falls back to another port (ADR 0037). Held by another process already:
    held all the same."""
    from chalicelib.compute.credentials_network import ECS_CREDENTIALS_ADDRESS, ensure_network

    ensure_network(client)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the TIME_WAIT of an earlier server's answers
    try:
        holder.bind((ECS_CREDENTIALS_ADDRESS, 80))
        holder.listen(1)
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            holder.close()
            raise
    try:
        yield
    finally:
        holder.close()


def remove_containers(client: Any, state_dir: Path) -> None:
    """Force-remove every container (and Docker volume) a server on `state_dir` started."""
    path = state_dir / "executor-id"
    if not path.exists():
        return
    label = f"batchplane.state-dir={path.read_text().strip()}"
    for c in client.containers(all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            client.remove_container(c["Id"], v=True, force=True)
    for v in client.volumes(filters={"label": label}).get("Volumes") or []:
        with contextlib.suppress(Exception):
            client.remove_volume(v["Name"], force=True)


def node_networks(client: Any, state_dir: Path) -> list[dict[str, Any]]:
    """The per-job node networks (multi-node jobs) a server on `state_dir` created and has not removed yet."""
    path = state_dir / "executor-id"
    if not path.exists():
        return []
    label = f"batchplane.state-dir={path.read_text().strip()}"
    return list(client.networks(filters={"label": [label, "batchplane.nodes-of"]}))


class EngineGate:
    """A proxy in front of the Docker engine, at `docker_host` (a unix socket: a server started with DOCKER_HOST set
    to it talks to the engine through it), that holds the server's container creates (those whose request line has
    `match`) until `release()`: with `hold="request"` the engine never sees a create held (dropped when the server
    goes away first: the container is never created); with `hold="response"` the engine creates the container and
    its answer is kept from the server (the container exists, the server does not know its id). `held` is set once a
    create is held. Every other call (and every call after the release) passes through, streams included."""

    def __init__(self, hold: str, match: bytes = b"/containers/create") -> None:
        assert hold in ("request", "response")
        self.hold, self.match = hold, match
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        assert host.startswith("unix://"), f"EngineGate needs the engine on a unix socket, not {host}"
        self.upstream = host[len("unix://") :]
        self.dir = tempfile.mkdtemp(prefix="bpgate-")  # short: a socket's path has at most 107 bytes
        self.path = os.path.join(self.dir, "docker.sock")
        self.held = threading.Event()
        self.released = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="engine-gate", daemon=True).start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        for s in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                s.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.dir)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.upstream)
            self._sockets += [client, engine]
            answer = threading.Event()  # cleared while the answer to a create is held
            answer.set()
            threading.Thread(target=self._up, args=(client, engine, answer), daemon=True).start()
            threading.Thread(target=self._down, args=(engine, client, answer), daemon=True).start()

    def _holds(self, data: bytes) -> bool:
        return not self.released.is_set() and data.startswith(b"POST ") and self.match in data.split(b"\r\n", 1)[0]

    def _up(self, client: socket.socket, engine: socket.socket, answer: threading.Event) -> None:
        """The server's requests to the engine (one at a time per connection: docker-py does not pipeline)."""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self._holds(data):
                    self.held.set()
                    if self.hold == "response":
                        answer.clear()
                    else:
                        while not self.released.is_set():  # (the rest of the request joins it)
                            if select.select([client], [], [], 0.05)[0]:
                                more = client.recv(65536)
                                if not more:
                                    return  # the server went away: the create never reaches the engine
                                data += more
                engine.sendall(data)
        with contextlib.suppress(OSError):
            engine.shutdown(socket.SHUT_WR)

    def _down(self, engine: socket.socket, client: socket.socket, answer: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := engine.recv(65536):
                while not answer.is_set() and not self.released.wait(0.05):
                    pass
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
