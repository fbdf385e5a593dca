"""AWS credentials for jobs the ECS way: the CredentialVendor of the local runtime (docs/adr/0017).

A job whose definition has a `jobRoleArn` gets the variable every AWS SDK's container credentials provider reads, and
an HTTP endpoint that answers it as the ECS agent does (`GET /v2/credentials/<id>` → `{"RoleArn", "AccessKeyId",
"SecretAccessKey", "Token", "Expiration"}`, 400 `InvalidIdInRequest` for an id it does not know). The credentials
are the server's own AWS session's, fetched at each request (so a refreshed session is passed on).

- Containers get `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/<id>`, as ECS sets it; the SDKs fetch it
  from 169.254.170.2, the gateway of the `batchplane-credentials` Docker network (compute/credentials_network.py),
  where this server listens on port 80. When it cannot bind port 80 there (not root, or another server holds it),
  it listens on another port of that address (BATCHPLANE_CREDENTIALS_PORT, else the one its recorded grants use,
  else an ephemeral one) and containers get `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.2:<port>/v2/…`
  instead, which the SDKs accept on that address on any port (docs/adr/0037). A URI is answered only to the
  container holding it: Docker tells which container has the request's source address, and the first one proven
  to carry the URI in its environment becomes the grant's only holder.
- Host processes (the process executor) get `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:<port>/v2/…`:
  plain http is accepted by the SDKs on a loopback address only.
- Each attempt gets its own unguessable id (`secrets.token_urlsafe`), answered from its grant until its release.
  No secret is ever put in an environment; neither the credentials nor the ids are logged.
- A job with a role whose credentials cannot be served (the server's session has none; no container endpoint: no
  engine, or no port at all on 169.254.170.2) fails to start (CredentialsUnavailable, docs/adr/0037): one warning
  per reason says why, and the job's statusReason and container reason too.
- Container grants are kept in a file of the state directory (0600), so containers that outlive a restart of the
  server keep getting credentials; host processes do not outlive it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from chalicelib.compute import credentials_grants
from chalicelib.compute.credentials_grants import FULL_URI_VAR, PATH_PREFIX, RELATIVE_URI_VAR, Grant
from chalicelib.compute.port import CredentialsUnavailable, TaskSpec

if TYPE_CHECKING:
    import docker
    from botocore.credentials import Credentials

log = logging.getLogger("batchplane.credentials")

CONTAINER_PORT = 80  # the SDKs build http://169.254.170.2<relative uri>: port 80, nothing else
NO_SESSION = "the server's AWS session has no credentials (set AWS_PROFILE, AWS_ACCESS_KEY_ID… and restart it)"
PORT_VAR = "BATCHPLANE_CREDENTIALS_PORT"  # the port on 169.254.170.2 used when port 80 cannot be (docs/adr/0037)
STATIC_LIFETIME_S = 3600  # the Expiration given for credentials that do not expire (the SDKs fetch again before it)
RETRY_CONTAINERS_S = 10.0  # how often a container grant tries again to open the container endpoint
REQUEST_TIMEOUT_S = 5.0  # as the ECS agent's read/write timeouts


class CredentialSession(Protocol):
    """What the vendor needs of a boto3 / botocore session."""

    def get_credentials(self) -> Credentials | None: ...


def configured_port(environ: Mapping[str, str] = os.environ) -> int | None:
    """BATCHPLANE_CREDENTIALS_PORT, when it is a port number (anything else is ignored, with a warning)."""
    value = environ.get(PORT_VAR, "").strip()
    if not value:
        return None
    if value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    log.warning("ignoring %s=%r: not a port number (1-65535)", PORT_VAR, value)
    return None


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": f"CredentialsV2Request: {message}"}


def _close(server: ThreadingHTTPServer) -> None:
    """Stop a server without waiting out serve_forever's 0.5 s poll: a connection wakes its select()."""
    stopper = threading.Thread(target=server.shutdown, name="credentials-stop", daemon=True)
    stopper.start()
    host, port = server.server_address[:2]
    while stopper.is_alive():
        with contextlib.suppress(OSError):
            socket.create_connection((str(host), int(port)), timeout=0.5).close()
        stopper.join(0.01)
    server.server_close()


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalCredentialVendor:
    """The CredentialVendor port (compute/port.py) for the local runtime: start() before granting, stop() at the end."""

    def __init__(
        self,
        session: CredentialSession,
        *,
        docker_client: docker.APIClient | None = None,
        loopback_host: str = "127.0.0.1",
        grants_file: Path | None = None,
        fallback_port: int | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._docker = docker_client
        self._loopback_host = loopback_host
        self._grants_file = grants_file
        self._fallback_port = fallback_port  # configured; else the one the recorded grants use; else ephemeral
        self._saved_port: int | None = None
        self._endpoint = ""  # how containers reach the endpoint, for the startup output
        self._now = now
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}  # by key
        self._by_token: dict[str, Grant] = {}
        self._resolved = False
        self._credentials: Credentials | None = None
        self._said: set[str] = set()  # the reasons already logged
        self._loopback: ThreadingHTTPServer | None = None
        self._container: ThreadingHTTPServer | None = None
        self._network_id: str | None = None
        self._network_name: str | None = None
        self._container_tried_at: float | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loopback = self._serve(self._loopback_host, 0, container=False)
        self._load()
        if self._docker is not None:
            self._open_containers()

    def stop(self) -> None:
        for server in (self._loopback, self._container):
            if server is not None:
                _close(server)
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S)
        self._loopback = self._container = None

    @property
    def loopback_endpoint(self) -> str:
        assert self._loopback is not None, "start() the vendor first"
        return f"http://{self._loopback_host}:{self._loopback.server_address[1]}"

    @property
    def network(self) -> str | None:
        return self._network_name if self._container is not None else None

    @property
    def note(self) -> str:
        """Where jobs with a jobRoleArn get their credentials, and why there (`batchplane up` prints it)."""
        if self._docker is None:
            return f"host processes get {FULL_URI_VAR}={self.loopback_endpoint}{PATH_PREFIX}<id>"
        if self._container is None:
            return f"none can be served to containers ({self._container_reason}): jobs with one fail to start"
        return f"containers get {self._endpoint}"

    # -- the port -----------------------------------------------------------------------------------------------

    def grant(self, spec: TaskSpec, *, container: bool) -> dict[str, str]:
        role_arn = spec.container.get("jobRoleArn")
        if not role_arn:
            return {}
        with self._lock:
            known = self._grants.get(spec.key)
        if known is None:
            if self._server_credentials() is None:
                self._refuse(spec, str(role_arn), NO_SESSION)
            if container and self._container is None and not self._open_containers():
                self._refuse(spec, str(role_arn), self._container_reason)
            known = self._new_grant(spec.key, str(role_arn), container)
            with self._lock:
                known = self._grants.setdefault(spec.key, known)  # idempotent, also when two threads race
                self._by_token[known.token] = known
                if known.container:
                    self._save()
        return known.env

    def _new_grant(self, key: str, role_arn: str, container: bool) -> Grant:
        grant = Grant(key, secrets.token_urlsafe(32), role_arn, container, FULL_URI_VAR)
        if not container:
            grant.url = self.loopback_endpoint + grant.path
            return grant
        from chalicelib.compute.credentials_network import container_variable

        assert self._container is not None
        grant.var, grant.url = container_variable(int(self._container.server_address[1]), grant.path)
        return grant

    def release(self, key: str) -> None:
        with self._lock:
            grant = self._grants.pop(key, None)
            if grant is None:
                return
            self._by_token.pop(grant.token, None)
            if grant.container:
                self._save()

    # -- answering ----------------------------------------------------------------------------------------------

    def answer(self, path: str, client: str, *, container: bool) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body for `GET path` from address `client` on the loopback or container side."""
        path = path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX) or path == PATH_PREFIX:
            return 400, _error("NoIdInRequest", "No ID in the request")
        with self._lock:
            grant = self._by_token.get(path[len(PATH_PREFIX) :])
        if grant is None or grant.container != container or not self._from_holder(grant, client):
            log.info("refused a credentials request from %s: an unknown id, or not its container", client)
            return 400, _error("InvalidIdInRequest", "ID not found")
        creds = self._server_credentials()
        try:
            frozen = creds.get_frozen_credentials() if creds is not None else None
        except Exception as e:  # a refresh that failed (expired SSO session, STS unreachable, ...)
            log.warning("the server's AWS credentials could not be refreshed: %s", type(e).__name__)
            frozen = None
        if frozen is None:
            return 503, _error("CredentialsUninitialized", "Credentials uninitialized for ID")
        expiry = getattr(creds, "_expiry_time", None)  # RefreshableCredentials' (no public accessor)
        if not isinstance(expiry, dt.datetime):
            expiry = dt.datetime.fromtimestamp(self._now() + STATIC_LIFETIME_S, dt.UTC)
        body: dict[str, Any] = {
            "RoleArn": grant.role_arn,
            "AccessKeyId": frozen.access_key,
            "SecretAccessKey": frozen.secret_key,
            "Token": frozen.token,  # None for long-term keys: botocore then signs without a session token
            "Expiration": _iso(expiry),
        }
        account = getattr(frozen, "account_id", None)
        if account:
            body["AccountId"] = account
        return 200, body

    def _from_holder(self, grant: Grant, client: str) -> bool:
        """Is the request from the container the grant was made for? Loopback grants: any local process could
        connect, the id is the only secret (ADR 0017). Container grants: the container at the request's source
        address must be the one holding the URI in its environment; the first one proven is the grant's holder, and
        every later request must come from it (an address freed by an ended container may be given to another)."""
        if not grant.container:
            return True
        from chalicelib.compute.credentials_network import container_at, holds_uri

        if self._docker is None or self._network_id is None:
            return False
        container_id = container_at(self._docker, self._network_id, client)
        if container_id is None:
            return False
        if grant.holder is None:
            if not holds_uri(self._docker, container_id, grant.var, grant.url or grant.path):
                return False
            with self._lock:
                if grant.holder is None:
                    grant.holder = container_id
        return grant.holder == container_id

    # -- internals ----------------------------------------------------------------------------------------------

    def _server_credentials(self) -> Credentials | None:
        """The session's credentials, resolved once (resolving may probe the instance metadata service, which
        takes seconds where there is none); a RefreshableCredentials refreshes itself."""
        with self._lock:
            if self._resolved:
                return self._credentials
        try:
            found = self._session.get_credentials()
        except Exception as e:  # e.g. a profile named in AWS_PROFILE that does not exist
            log.warning("the server's AWS session failed to load credentials: %s", e)
            found = None
        with self._lock:
            if not self._resolved:
                self._resolved, self._credentials = True, found
            return self._credentials

    def _refuse(self, spec: TaskSpec, role_arn: str, reason: str) -> NoReturn:
        """The attempt fails to start (docs/adr/0037): a job given no credentials for its role would find out only
        once its AWS calls failed, or would find the SDK chain's next source (on a host, the user's own)."""
        if reason not in self._said:
            self._said.add(reason)
            log.warning("jobs with a jobRoleArn fail to start: no AWS credentials can be served: %s", reason)
        log.debug("%s has a jobRoleArn and fails to start: %s", spec.key, reason)
        raise CredentialsUnavailable(
            f"ResourceInitializationError: no AWS credentials can be served for jobRoleArn {role_arn}: {reason}"
        )

    _container_reason = "the container credentials endpoint is not available"

    def _open_containers(self) -> bool:
        """Make sure the credentials network exists and listen on its gateway; False (and the reason kept) when
        that is not possible. Tried again at most every RETRY_CONTAINERS_S (e.g. once another server freed the
        port)."""
        from chalicelib.compute.credentials_network import (
            ECS_CREDENTIALS_ADDRESS,
            NETWORK_NAME,
            NetworkUnavailable,
            ensure_network,
        )

        if self._docker is None:
            self._container_reason = "containers get credentials only with a Docker engine"
            return False
        with self._lock:
            now = time.monotonic()
            if self._container_tried_at is not None and now - self._container_tried_at < RETRY_CONTAINERS_S:
                return self._container is not None
            self._container_tried_at = now
        try:
            self._network_id = ensure_network(self._docker)
            self._network_name = NETWORK_NAME
        except NetworkUnavailable as e:
            self._container_reason = str(e)
            return False
        except Exception as e:  # the engine went away
            self._container_reason = f"Docker did not answer: {e}"
            return False
        address = ECS_CREDENTIALS_ADDRESS
        try:
            self._container = self._serve(address, CONTAINER_PORT, container=True)
        except OSError as e:
            why = (
                f"{address}:{CONTAINER_PORT} cannot be bound ({e.strerror or e}): another batchplane server on this "
                "machine may hold it, or this server may not bind ports below 1024"
            )
            return self._open_fallback(address, why)
        self._endpoint = f"{RELATIVE_URI_VAR}, answered at {address}:{CONTAINER_PORT} as on ECS"
        log.info("AWS credentials for containers: %s", self._endpoint)
        return True

    def _open_fallback(self, address: str, why: str) -> bool:
        """Listen on another port of ECS's address: the configured one, else the one the recorded grants use (so
        containers that outlived a restart still reach it), else an ephemeral one (docs/adr/0037)."""
        if self._fallback_port is not None:
            ports = [self._fallback_port]
        else:
            ports = [p for p in (self._saved_port, 0) if p is not None and p != CONTAINER_PORT]
        for port in ports:
            try:
                self._container = self._serve(address, port, container=True)
                break
            except OSError as e:
                failed = f"{address}:{port or 'an ephemeral port'} cannot be bound either ({e.strerror or e})"
        else:
            self._container_reason = f"{why}; {failed}"
            return False
        self._endpoint = (
            f"{FULL_URI_VAR}=http://{address}:{self._container.server_address[1]}{PATH_PREFIX}<id>, because {why}"
        )
        log.warning(
            "AWS credentials for containers: %s (SDKs released before 2024 may accept only %s)",
            self._endpoint,
            RELATIVE_URI_VAR,
        )
        return True

    def _serve(self, host: str, port: int, *, container: bool) -> ThreadingHTTPServer:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT_S

            def do_GET(self) -> None:
                status, body = vendor.answer(self.path, self.client_address[0], container=container)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line holds the id: never logged

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name=f"credentials-{host}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return server

    def _load(self) -> None:
        if self._grants_file is None:
            return
        grants, self._saved_port = credentials_grants.read(self._grants_file)
        with self._lock:
            for grant in grants:
                self._grants[grant.key] = grant
                self._by_token[grant.token] = grant

    def _save(self) -> None:
        """Write the container grants (under the lock)."""
        if self._grants_file is not None:
            credentials_grants.write(self._grants_file, [g for g in self._grants.values() if g.container])
