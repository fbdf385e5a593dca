"""Every operation the API serves, in explicit tables (issue 15): what `api/gateway.py` routes to.

- `OPERATIONS`: the Batch operations, by botocore's name: the resource ones (api/handlers.py) and the job ones
  (api/jobs.py), each module's own table joined here; the wire (api/wire.py) maps paths to these names.
- `EXTENSIONS`: batchplane's own operations (triggers, the job graph), each with its POST path and its validation
  (api/extension.py); `EXTENSION_PATHS` routes their paths.

The CloudWatch Logs operations are another wire (JSON 1.1, X-Amz-Target, app.py's `/` route): their table is
`api/logs_api._OPERATIONS`. No module registers into these tables by being imported: a new operation is a line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.api import consumables, graph, handlers, jobs, triggers
from chalicelib.api.extension import Extension
from chalicelib.api.handlers import Handler

OPERATIONS: Mapping[str, Handler] = {**handlers.OPERATIONS, **jobs.OPERATIONS, **consumables.OPERATIONS}
EXTENSIONS: Mapping[str, Extension] = {**triggers.TRIGGER_OPERATIONS, **graph.GRAPH_OPERATIONS}
EXTENSION_PATHS: Mapping[tuple[str, str], str] = {("POST", ext.path): name for name, ext in EXTENSIONS.items()}
