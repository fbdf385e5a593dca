"""The `batchplane` command.

- `batchplane up`: run the control plane locally (SQLite state, jobs as Docker containers or local processes).
- `batchplane console`: the web console (also served by `up` at /console/) for a batchplane at --endpoint.
- `batchplane watch | logs | describe | dag | triggers`: talk to a running batchplane, local or deployed, through
  its API (`--endpoint`, default $BATCHPLANE_ENDPOINT or http://127.0.0.1:8000; `--region`). Output is rich text
  on a terminal and plain text when piped.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from chalicelib.compute.spawn import stop_passing_ignored_signals_to_jobs
from chalicelib.console.client import Api, CliError, default_endpoint, default_region
from chalicelib.runtime.auth import AUTH_ENV, AuthConfigError, readable_by_others
from chalicelib.runtime.state_lock import StateDirInUse


def _up(args: argparse.Namespace) -> int:
    from chalicelib.runtime.executor import ExecutorUnavailable
    from chalicelib.runtime.local import LocalConfig  # the server's stack, only for `up`
    from chalicelib.runtime.plane import build_local

    # Absolute: jobs run in their own working directories, and the paths handed to them must still name the state.
    state_dir = Path(args.state_dir).resolve()
    if not math.isfinite(args.retention_days) or args.retention_days < 0:
        print("batchplane up: --retention-days must be 0 (keep every job) or a positive number", file=sys.stderr)
        return 2
    auth = Path(args.auth).resolve() if args.auth else None
    from chalicelib.domain.validation import parse_limits

    try:
        limits = parse_limits(args.limit)
    except ValueError as e:
        print(f"batchplane up: --limit: {e}", file=sys.stderr)
        return 2
    config = LocalConfig(
        limits=limits,
        state_dir=state_dir,
        host=args.host,
        port=args.port,
        region=args.region,
        account=args.account,
        retention_days=args.retention_days,
        auth_file=auth,
        executor=args.executor,
        allow_privileged=args.allow_privileged,
        allow_host_paths=tuple(args.allow_host_path),
        array_window=LocalConfig.array_window if args.array_window is None else max(0, args.array_window),
    )
    if args.app is None:
        print(
            "batchplane up: no app to serve: run it through the `batchplane` command (app:batchplane)", file=sys.stderr
        )
        return 2
    try:
        runtime = build_local(config, args.app)
    except AuthConfigError as e:
        print(f"batchplane up: {e}", file=sys.stderr)
        return 2
    except ExecutorUnavailable as e:
        print(f"batchplane up: --executor {args.executor}: {e}", file=sys.stderr)
        return 2
    except StateDirInUse as e:
        print(f"batchplane up: {e}", file=sys.stderr)
        return 2
    if auth is not None and readable_by_others(auth):
        print(f"batchplane up: warning: {auth} holds secrets and others can read it (chmod 600 it)", file=sys.stderr)
    print(runtime.executor_note, flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    stop_passing_ignored_signals_to_jobs()  # `nohup batchplane up &`: its jobs must not ignore SIGHUP too
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runtime.start()
    endpoint = runtime.endpoint
    print(f"batchplane is up: the AWS Batch API at {endpoint} (state in {args.state_dir})", flush=True)
    print(f"  the web console: {endpoint}/console/", flush=True)
    print(f"  credentials for jobs with a jobRoleArn: {runtime.credentials.note}", flush=True)  # (docs/adr/0037)
    if runtime.server.gate is not None:
        keys = len(runtime.server.gate.verifier)
        print(f"  only requests signed with a key from {auth} are answered ({keys} keys)", flush=True)
    unsigned = "" if runtime.server.gate is not None else " --no-sign-request"  # no AWS credentials needed locally
    print(
        f"  try: aws batch describe-job-queues{unsigned} --endpoint-url {endpoint} --region {args.region}", flush=True
    )
    print("  stop with Ctrl-C", flush=True)
    # Short slices: the main thread must come back to the interpreter for the signal handler to run promptly.
    while not stop.wait(0.5):
        pass
    print("batchplane: shutting down", flush=True)
    runtime.stop()
    return 0


def _api(args: argparse.Namespace) -> Api:
    return Api(args.endpoint, args.region, profile=args.profile)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _watch(args: argparse.Namespace) -> int:
    from chalicelib.console import watch

    if (args.job_id is None) == (args.queue is None):
        raise CliError("watch takes a JOBID or --queue QUEUE (one of them)")
    return watch.run(
        _api(args), _console(), args.job_id, args.queue, plain=args.plain, interval=args.interval, once=args.once
    )


def _logs(args: argparse.Namespace) -> int:
    from chalicelib.console import views

    return views.logs(_api(args), _console(), args.job_id, args.follow, args.attempt, args.container)


def _describe(args: argparse.Namespace) -> int:
    from chalicelib.console import views

    return views.describe(_api(args), _console(), args.job_id)


def _dag(args: argparse.Namespace) -> int:
    from chalicelib.console import dag

    svg = None if args.no_svg else (args.svg or f"dag-{args.job_id.split(':')[0][:8]}.svg")
    return dag.run(_api(args), _console(), args.job_id, svg, args.dot)


def _console_web(args: argparse.Namespace) -> int:
    from chalicelib.console_web.proxy import ConsoleServer
    from chalicelib.runtime.auth import is_loopback

    if not is_loopback(args.host):  # whoever reaches it acts with the user's AWS credentials (docs/adr/0020)
        print(
            f"batchplane console: --host {args.host or '(every address)'} is not a loopback address: anyone who "
            "could reach it would act with your AWS credentials; bind 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    server = ConsoleServer(_api(args), args.host, args.port)
    server.start()
    print(f"the batchplane console for {args.endpoint}: {server.url}", flush=True)
    # Ctrl-C stops it even when it was started with SIGINT ignored (`nohup ... &` from a script: a background job of
    # a shell without job control ignores SIGINT, and Python then leaves it ignored), as `up` handles it itself.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Short slices, as `up` waits: Ctrl-C (KeyboardInterrupt) is raised only when the main thread runs Python,
        # and a wait without a timeout never returns when the kernel hands the signal to another thread (a request's).
        while True:
            time.sleep(0.5)
    finally:
        server.stop()
    return 0


def _triggers(args: argparse.Namespace) -> int:
    from chalicelib.console import triggers

    api, console = _api(args), _console()
    if args.action == "create":
        return triggers.create(api, console, args.file)
    if args.action == "list":
        return triggers.list_all(api, console)
    if args.action == "describe":
        return triggers.describe(api, console, args.name)
    return triggers.delete(api, console, args.name)


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint",
        default=default_endpoint(),
        help="the batchplane API (default: $BATCHPLANE_ENDPOINT, else http://127.0.0.1:8000)",
    )
    common.add_argument("--region", default=default_region(), help="region to sign requests for (default: from env)")
    common.add_argument(
        "--profile",
        default=os.environ.get("AWS_PROFILE") or None,
        help="the AWS profile whose keys sign requests (default: $AWS_PROFILE, else boto3's usual credentials)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchplane", description="An open, self-hostable AWS Batch.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the control plane locally (SQLite state, jobs in containers or processes)")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    up.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one)")
    up.add_argument("--state-dir", default="./.batchplane", help="where state, logs and job work dirs live")
    up.add_argument("--region", default="us-east-1", help="region used in ARNs when a request is unsigned")
    up.add_argument(
        "--executor",
        choices=("auto", "docker", "process"),
        default="auto",
        help="run jobs in their container images (docker) or as host processes (process); auto (default): docker "
        "when a Docker engine answers",
    )
    up.add_argument(
        "--account",
        default=os.environ.get("BATCHPLANE_ACCOUNT_ID", "123456789012"),
        help="account id in ARNs (default: $BATCHPLANE_ACCOUNT_ID, else 123456789012)",
    )
    up.add_argument(
        "--retention-days",
        type=float,
        default=30.0,
        help="remove finished jobs, their logs and work dirs this long after they stopped (0: keep all; default 30,"
        " as DynamoDB's TTL on AWS)",
    )
    up.add_argument(
        "--auth",
        default=os.environ.get(AUTH_ENV) or None,
        metavar="FILE",
        help="accept only requests SigV4-signed by a key in FILE (an AWS credentials file; default $"
        f"{AUTH_ENV}); required to listen beyond 127.0.0.1",
    )
    up.add_argument(
        "--array-window",
        type=int,
        metavar="N",
        help="write an array's children at most N ahead of its finished ones; the rest wait as views of the parent "
        "(default 1000; 0: write every child at submit)",
    )
    up.add_argument(
        "--allow-privileged",
        action="store_true",
        help="accept jobs asking for privileged containers or host devices (refused by default: root on this host)",
    )
    up.add_argument(
        "--allow-host-path",
        action="append",
        default=[],
        metavar="PREFIX",
        help="accept jobs whose volumes mount host paths under PREFIX, symlinks resolved (repeatable; default none)",
    )
    up.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="lift one of AWS's quotas (repeatable), e.g. max-array-size=1000000, max-dependencies=1000; "
        'README "Beyond AWS Batch" lists them',
    )
    up.set_defaults(func=_up)

    common = _client_options()
    watch = sub.add_parser("watch", parents=[common], help="a live view of a job and its DAG, or of a queue")
    watch.add_argument("job_id", nargs="?", metavar="JOBID", help="the job to watch, with its dependencies")
    watch.add_argument("--queue", help="watch a job queue instead")
    watch.add_argument("--plain", action="store_true", help="no live screen: print a line per change")
    watch.add_argument("--once", action="store_true", help="show one snapshot and exit")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    watch.set_defaults(func=_watch)

    logs = sub.add_parser("logs", parents=[common], help="a job's log (CloudWatch Logs GetLogEvents)")
    logs.add_argument("job_id", metavar="JOBID")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.add_argument("--attempt", type=int, help="which attempt (1-based; default: the latest)")
    logs.add_argument("--container", help="which container of a multi-container job (default: its first essential one)")
    logs.set_defaults(func=_logs)

    describe = sub.add_parser("describe", parents=[common], help="a job, its attempts, and why it waits")
    describe.add_argument("job_id", metavar="JOBID")
    describe.set_defaults(func=_describe)

    graph = sub.add_parser("dag", parents=[common], help="a job's ancestors and descendants, as text and SVG")
    graph.add_argument("job_id", metavar="JOBID")
    graph.add_argument("--svg", help="where to write the picture (default: dag-<job id>.svg)")
    graph.add_argument("--no-svg", action="store_true", help="text only")
    graph.add_argument("--dot", help="also write Graphviz DOT to this file")
    graph.set_defaults(func=_dag)

    web = sub.add_parser("console", parents=[common], help="the web console on this machine, signing for --endpoint")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    web.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001; 0 picks a free one)")
    web.set_defaults(func=_console_web)

    triggers = sub.add_parser("triggers", help="submit jobs when files land in a bucket, or on a schedule")
    actions = triggers.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common], help="create a trigger from a JSON definition")
    create.add_argument("--file", required=True, help="the definition (JSON; - for stdin)")
    actions.add_parser("list", parents=[common], help="list the triggers")
    for action in ("describe", "delete"):
        named = actions.add_parser(action, parents=[common], help=f"{action} a trigger")
        named.add_argument("name", metavar="NAME")
    triggers.set_defaults(func=_triggers)
    return parser


def main(argv: list[str] | None = None, *, app: Any = None) -> int:
    """`app`: the Chalice app `batchplane up` serves (app.py's `batchplane` entry point hands it over)."""
    args = build_parser().parse_args(argv)
    args.app = app
    func: Callable[[argparse.Namespace], Any] = args.func
    try:
        result: int = func(args)
    except CliError as e:
        Console(stderr=True, highlight=False).print(f"batchplane: {e}", style="red", markup=False)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
