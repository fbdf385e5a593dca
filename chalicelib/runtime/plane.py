"""The composition root: the one place that decides which plane app.py serves, and builds it.

- On AWS (`BATCHPLANE_RUNTIME=aws`, read once, or a runtime installed with `configure_aws`), the plane is one
  `AwsRuntime` per Lambda container, built on first use from `AwsConfig.from_environment()` (every setting read
  once): the DynamoDB store, the EventBridge sink, the ECS launcher, the reactor (`react.reactor_for`), the
  dispatcher, the capacity groups.
- `batchplane up` builds its plane in `runtime/local.py` (`LocalRuntime`: SQLite, processes or containers, the
  engine with its reactor and dispatcher, the trigger runner) and hands its Services to the app it was given
  (`BatchplaneApp.serve` -> `serve_local`); the local runtime never imports app.py, nor this module.
- Anything else (a process that serves app.py without either): the AWS plane from the environment.

app.py asks `services()` for every API request and `aws_runtime()` for every Lambda entry point.
"""

from __future__ import annotations

import logging
import os
import threading

from chalicelib.control.context import Services
from chalicelib.runtime.aws import ENV_RUNTIME, AwsConfig, AwsRuntime

log = logging.getLogger("batchplane.plane")

_lock = threading.Lock()
_local: Services | None = None
_aws: AwsRuntime | None = None
_aws_enabled: bool | None = None


def serve_local(services: Services | None) -> None:
    """Install the Services of a local plane (`batchplane up`, tests); None forgets them."""
    global _local
    with _lock:
        _local = services


def configure_aws(rt: AwsRuntime | None) -> None:
    """Install the AWS runtime the handlers use (tests, the bench's moto deployment); None forgets it."""
    global _aws, _aws_enabled
    with _lock:
        _aws, _aws_enabled = rt, None


def aws_active() -> bool:
    """Whether this process serves the AWS plane: a runtime was installed, or BATCHPLANE_RUNTIME=aws (read once)."""
    global _aws_enabled
    if _aws is not None:
        return True
    if _aws_enabled is None:
        _aws_enabled = os.environ.get(ENV_RUNTIME, "").strip().lower() == "aws"
    return _aws_enabled


def aws_runtime() -> AwsRuntime:
    """The AWS plane of this Lambda container, built once from the environment."""
    global _aws
    if _aws is None:
        with _lock:
            if _aws is None:
                rt = AwsRuntime(AwsConfig.from_environment())
                try:
                    rt.reindex_legacy()
                except Exception:  # the sweep moves them within a minute; serving must not wait for it
                    log.exception("re-indexing active jobs of an earlier version failed")
                _aws = rt
    return _aws


def services() -> Services:
    """The Services every API request runs on."""
    if aws_active():
        return aws_runtime().services
    local = _local
    return local if local is not None else aws_runtime().services
