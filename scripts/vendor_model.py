"""Vendor botocore's Batch wire model (documentation stripped) into chalicelib/api/.

Why vendored: the server validates requests against the model. In Lambda, the runtime's bundled botocore may be
older or newer than the one clients use; the vendored copy pins the contract we implement. Re-run after bumping
botocore in requirements.txt:  .venv/bin/python scripts/vendor_model.py
"""

from __future__ import annotations

import gzip
import json
import pathlib
from typing import Any

import botocore

SRC = pathlib.Path(botocore.__file__).parent / "data" / "batch" / "2016-08-10" / "service-2.json.gz"
DST = pathlib.Path(__file__).resolve().parent.parent / "chalicelib" / "api" / "batch-2016-08-10.json"


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main() -> None:
    model = strip(json.loads(gzip.decompress(SRC.read_bytes())))
    model["metadata"]["vendoredFrom"] = f"botocore {botocore.__version__}"
    DST.write_text(json.dumps(model, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {DST} ({DST.stat().st_size} bytes) from botocore {botocore.__version__}")


if __name__ == "__main__":
    main()
