"""The credentials vendor's grants (compute/credentials.py; docs/adr/0017, 0037): what an attempt was given, and the
file of the state directory that keeps container grants across a restart of the server (containers outlive it)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("batchplane.credentials")

PATH_PREFIX = "/v2/credentials/"
RELATIVE_URI_VAR = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI_VAR = "AWS_CONTAINER_CREDENTIALS_FULL_URI"


@dataclass
class Grant:
    key: str  # jobId#attempt
    token: str
    role_arn: str
    container: bool
    var: str = RELATIVE_URI_VAR  # the variable the attempt was given, and its value ("": the path)
    url: str = ""
    holder: str | None = None  # a container grant: the id of the container that proved it holds the URI

    @property
    def path(self) -> str:
        return PATH_PREFIX + self.token

    @property
    def env(self) -> dict[str, str]:
        return {self.var: self.url or self.path}


def read(path: Path) -> tuple[list[Grant], int | None]:
    """The container grants recorded in `path` (none when it does not exist, or is unreadable: with a warning), and
    the port of 169.254.170.2 their full URIs name (None: relative URIs only)."""
    if not path.exists():
        return [], None
    try:
        grants = [
            Grant(
                str(row["key"]),
                str(row["token"]),
                str(row["role"]),
                container=True,
                var=str(row.get("var", RELATIVE_URI_VAR)),  # (a file of a version before ADR 0037)
                url=str(row.get("url", "")),
            )
            for row in json.loads(path.read_text())
        ]
        port = next((urlsplit(g.url).port for g in grants if g.var == FULL_URI_VAR), None)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("ignoring the unreadable credentials grants file %s: %s", path, type(e).__name__)
        return [], None
    return grants, port


def write(path: Path, grants: list[Grant]) -> None:
    """Record the container grants: atomically, readable by this user only (ids and role ARNs, never credentials)."""
    rows = [{"key": g.key, "token": g.token, "role": g.role_arn, "var": g.var, "url": g.url} for g in grants]
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(rows, f)
        os.replace(tmp, path)
    except OSError as e:  # the grants still answer; only a restart of the server would forget them
        log.warning("could not record the container credentials grants in %s: %s", path, e)
