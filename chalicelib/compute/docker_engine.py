"""The Docker engine as the Docker executor uses it: connecting (DOCKER_HOST or the default socket), pulling images
(with the server's AWS credentials for ECR registries), and the few docker-py internals it relies on.

docker-py (7.x) findings, pinned in requirements-dev.txt:
- `APIClient(version=None)` asks the engine for its API version while it is constructed: constructing one is the
  ping; an engine that does not answer raises `DockerException` there.
- `APIClient.logs(stream=True)` inspects the container first (to tell a TTY's raw stream from a multiplexed one):
  one more round trip per container. Our containers never have a TTY, so `log_frames` asks for the multiplexed
  stream itself, and keeps the HTTP response so a shutdown can end a blocked read (socket shutdown).
- `pull(stream=False)` does not raise on a failed pull: the engine reports it in the streamed JSON (`error`).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import docker
from docker.errors import APIError, DockerException
from docker.utils import parse_repository_tag

log = logging.getLogger("batchplane.docker")

PING_TIMEOUT_S = 2
API_TIMEOUT_S = 60
MAX_POOL = 64  # connections kept to the engine: one per container's log stream while it runs, plus calls
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
DOCKER_HINT = (
    "to run jobs in their container images, start a Docker engine (`bash scripts/docker-up.sh`, or install Docker "
    "and set DOCKER_HOST)"
)


def connect(timeout: int = API_TIMEOUT_S) -> docker.APIClient:
    """A client of the engine at DOCKER_HOST (else the default socket); raises DockerException if none answers."""
    client = docker.APIClient(**_env_kwargs(), timeout=timeout, max_pool_size=MAX_POOL)
    client.ping()
    return client


def _env_kwargs() -> dict[str, Any]:
    return dict(docker.utils.kwargs_from_env())


def engine_answers(timeout: int = PING_TIMEOUT_S) -> str | None:
    """Why no Docker engine can be used (None: one answers)."""
    try:
        client = connect(timeout)
    except DockerException as e:
        return str(e)
    client.close()
    return None


def engine_message(e: Exception) -> str:
    """The engine's own words for an API error (docker-py adds the HTTP status and URL around them)."""
    if isinstance(e, APIError) and e.explanation:
        return str(e.explanation)
    return str(e)


def ecr_auth(registry: str) -> dict[str, str] | None:
    """Credentials for an ECR registry from the server's own AWS session (None: not ECR, or no credentials)."""
    match = ECR_HOST.match(registry)
    if match is None:
        return None
    try:
        import boto3

        session = boto3.session.Session()
        if session.get_credentials() is None:
            log.info("pulling from %s without credentials: this server has no AWS credentials", registry)
            return None
        ecr = session.client("ecr", region_name=match.group(3))
        data = ecr.get_authorization_token(registryIds=[match.group(1)])["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return {"username": user, "password": password, "serveraddress": registry}
    except Exception as e:  # the pull is tried anonymously; its failure says why
        log.warning("no ECR token for %s: %s", registry, e)
        return None


def pull(client: docker.APIClient, image: str) -> str | None:
    """Pull an image through the engine; returns why it failed (the engine's message), None once it is there."""
    repository, tag = parse_repository_tag(image)
    registry = repository.split("/", 1)[0] if "/" in repository else ""
    auth = ecr_auth(registry) if registry else None
    try:
        for message in client.pull(repository, tag=tag or "latest", stream=True, decode=True, auth_config=auth):
            if isinstance(message, dict) and message.get("error"):
                return str(message["error"])
    except DockerException as e:
        return engine_message(e)
    return None


def log_frames(client: docker.APIClient, container: str, since: float | None, holder: list[Any]) -> Iterator[bytes]:
    """stdout and stderr of a (non-TTY) container as the engine's frames, each line with its RFC 3339 timestamp,
    following it until it ends. The HTTP response is appended to `holder` so `close_stream` can end the read."""
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 1, "tail": "all"}
    if since:
        params["since"] = f"{since:.9f}"
    api: Any = client
    response = api._get(api._url("/containers/{0}/logs", container), params=params, stream=True)
    holder.append(response)
    api._raise_for_status(response)
    yield from api._multiplexed_response_stream_helper(response)


def logged_since(client: docker.APIClient, container: str, since_ms: int | None, timeout: float) -> list[bytes]:
    """One read (no follow) of the frames the engine holds from `since_ms` on (its `since` keeps lines at or after
    it), within `timeout` seconds a read: what a follow that ended early missed (ADR 0016)."""
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "tail": "all"}
    if since_ms is not None:  # from the integer ms, not a float: a rounded-up `since` would skip a line
        params["since"] = f"{since_ms // 1000}.{since_ms % 1000:03d}"
    api: Any = client
    response = api._get(api._url("/containers/{0}/logs", container), params=params, timeout=timeout)
    api._raise_for_status(response)
    return list(api._multiplexed_buffer_helper(response))


def close_stream(client: docker.APIClient, response: Any) -> None:
    """End a log stream another thread may be blocked reading (its read returns at once)."""
    api: Any = client
    with contextlib.suppress(Exception):
        raw = api._get_raw_response_socket(response)  # a SocketIO for plain sockets (unix, tcp): its _sock
        getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
    # (not response.close(): it waits for the lock the blocked reader holds)


def epoch_ms(stamp: bytes) -> int:
    """Epoch ms of the engine's RFC 3339 timestamp (nanoseconds: fromisoformat keeps microseconds)."""
    text = stamp.decode()
    if "." in text:
        head, _, frac = text.rstrip("Z").partition(".")
        text = f"{head}.{frac[:6].ljust(6, '0')}+00:00"
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def log_lines(frame: bytes, after_ms: int | None) -> list[tuple[int, str]]:
    """The (timestamp ms, message) lines of a log frame; those at or before `after_ms` were recorded before a
    restart and are left out (ADR 0016: a line in the same ms as the last recorded one is dropped, not doubled)."""
    lines: list[tuple[int, str]] = []
    for raw in frame.split(b"\n"):
        if not raw:
            continue
        stamp, _, text = raw.partition(b" ")
        try:
            ms = epoch_ms(stamp)
        except ValueError:
            ms, text = time.time_ns() // 1_000_000, raw
        if after_ms is not None and ms <= after_ms:
            continue
        lines.append((ms, text.decode("utf-8", "replace").rstrip("\r")))
    return lines


def unseen_lines(frames: list[bytes], after_ms: int | None, appended: list[str] | None) -> list[tuple[int, str]]:
    """The lines of `frames` (read from `after_ms` on) not appended yet: those after `after_ms`, and those in that
    millisecond beyond `appended`, the texts appended in it already (counted); `appended` None: none in it is new
    (a re-attached watcher: lines up to the last recorded millisecond are known, ADR 0016)."""
    left = Counter(appended or ())
    lines: list[tuple[int, str]] = []
    for frame in frames:
        for ms, text in log_lines(frame, None):
            if after_ms is not None and ms < after_ms:
                continue  # not asked for
            if ms == after_ms:
                if appended is None:
                    continue  # known
                if left[text] > 0:  # appended already
                    left[text] -= 1
                    continue
            lines.append((ms, text))
    return lines


OOM_EVENT_WAIT_S = 1.0  # how long an exit 137 without OOMKilled waits for the engine's "oom" event (oom_killed)


def oom_killed(client: docker.APIClient, container: str, *, wait: bool = True) -> bool:
    """Whether the ended container was killed for exceeding its memory: `State.OOMKilled`, or the engine's "oom"
    event for it. Docker 20.10 on cgroup v2 sets OOMKilled only when containerd's OOM event reaches it before the
    task's exit; under load it can come after (then the flag stays false for good, but the daemon still logs the
    container's "oom" event: moby libcontainerd; nomad#13119 saw the same flakiness). Asked only for an exit 137;
    not `wait`: the event is looked for once (a container our stop killed)."""
    state = client.inspect_container(container)["State"]
    if state.get("OOMKilled"):
        return True
    since = int(time.time()) - 3600  # (the filter names the container: any window that covers its life will do)
    deadline = time.monotonic() + (OOM_EVENT_WAIT_S if wait else 0.0)
    while True:
        if oom_event(client, container, since):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def oom_event(client: docker.APIClient, container: str, since: int) -> bool:
    """Whether the engine logged an "oom" event for the container since `since` (epoch seconds), up to now."""
    filters = {"container": [container], "event": ["oom"]}
    for _ in client.events(since=since, until=int(time.time()) + 1, filters=filters, decode=True):
        return True
    return False
