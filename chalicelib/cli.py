"""The `batchplane` command."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from chalicelib.runtime.local import LocalConfig, LocalRuntime


def _up(args: argparse.Namespace) -> int:
    runtime = LocalRuntime(
        LocalConfig(state_dir=Path(args.state_dir), host=args.host, port=args.port, region=args.region)
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runtime.start()
    endpoint = runtime.endpoint
    print(f"batchplane is up: the AWS Batch API at {endpoint} (state in {args.state_dir})", flush=True)
    print(f"  try: aws batch describe-job-queues --endpoint-url {endpoint} --region {args.region}", flush=True)
    print("  stop with Ctrl-C", flush=True)
    # Short slices: the main thread must come back to the interpreter for the signal handler to run promptly.
    while not stop.wait(0.5):
        pass
    print("batchplane: shutting down", flush=True)
    runtime.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchplane", description="An open, self-hostable AWS Batch.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the control plane locally (SQLite state, local processes)")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    up.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one)")
    up.add_argument("--state-dir", default="./.batchplane", help="where state, logs and job work dirs live")
    up.add_argument("--region", default="us-east-1", help="region used in ARNs when a request is unsigned")
    up.set_defaults(func=_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
