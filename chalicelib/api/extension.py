"""batchplane's own operations, next to the Batch ones: each is a POST path, a validator and a handler.

The Batch operations are resolved from botocore's model and validated against it (api/wire.py); these are not in
that model, so each brings its own validation. Errors are the Batch ones (api/errors.py): a bad request is a 400
ClientException naming the field. Their table is `api/operations.EXTENSIONS`, which the gateway consults when a
path is not a Batch one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.api.handlers import Handler

Validator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Extension:
    path: str  # the request URI (POST)
    validate: Validator
    handler: Handler
