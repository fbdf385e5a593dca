"""`batchplane up` with AWS's array-size quota (10,000) raised to 1,000,000, for the array-1000000 workload.

The quota is `domain/validation.Limits.max_array_size`; `batchplane up` gains an option to raise it with the limits
work of issue 17 item 1 (`--limit max-array-size=1000000`). Until then this entry point builds the same server with
the limit raised in its LocalConfig, and takes the same options (`python -m bench.big_up up --port ...`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.runtime import local

MAX_ARRAY_SIZE = 1_000_000


def main() -> int:
    plain_init = local.LocalRuntime.__init__

    def init(self: local.LocalRuntime, config: local.LocalConfig, app: Any) -> None:
        raised = dataclasses.replace(config.limits, max_array_size=MAX_ARRAY_SIZE)
        plain_init(self, dataclasses.replace(config, limits=raised), app)

    local.LocalRuntime.__init__ = init  # type: ignore[method-assign]
    from app import batchplane

    return batchplane()


if __name__ == "__main__":
    raise SystemExit(main())
