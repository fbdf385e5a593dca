"""`python -m bench [--workload NAME ...] [--quick]`: one fresh server per workload, one JSON line per workload."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import containers
from bench.client import make_client, set_up
from bench.server import Server
from bench.workloads import IN_PROCESS, TARGETS, WORKLOADS, Context, Incomplete, judge


def run_one(
    name: str,
    quick: bool,
    wrap: list[str] | None,
    keep_dir: bool,
    profile_dir: Path | None,
    array_poll_s: float,
    profile_gil: bool = False,
    profile_idle: bool = False,
    array_size: int = 1_000_000,
) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"workload": name}
    load_before = os.getloadavg()[0]
    profile_out = profile_dir / f"{name}.collapsed.txt" if profile_dir else None
    if name in containers.WORKLOADS:
        why = containers.skip_reason()
        if why is not None:
            print(f"bench: {name} skipped: {why}", file=sys.stderr, flush=True)
            return {**result, "skipped": why}
    # bench.server runs `--executor process` (the process workloads measure what they always did); these override it.
    executor = containers.SERVER_ARGS if name in containers.WORKLOADS else None
    server = Server(
        wrap=wrap,
        keep_dir=keep_dir,
        profile_out=profile_out,
        profile_gil=profile_gil,
        profile_idle=profile_idle,
        args=executor,
    )
    if name == "array-1000000":
        server.args = [*server.args, "--limit", "max-array-size=1000000"]  # AWS's 10,000-children quota raised
    try:
        if name in IN_PROCESS:  # no server: the workload measures something else (aws-cost: calls on moto)
            server.dir.rmdir()  # made empty by Server(), never used
            figures = IN_PROCESS[name]()
        else:
            with server:
                client = make_client(server.endpoint)
                setup = set_up(client)
                figures = WORKLOADS[name](Context(server, client, setup, quick, array_poll_s, array_size))
        result.update(figures)
        targets, met, per = judge(name, figures)
        result["target"] = targets
        result["target_op"] = {k: op for k, (_, op) in TARGETS.get(name, {}).items()}
        result["met"] = met
        result["met_by"] = per
    except Incomplete as e:  # what was measured before it failed, judged, with the error
        result.update(e.figures)
        targets, _, per = judge(name, e.figures)
        result["target"] = targets
        result["target_op"] = {k: op for k, (_, op) in TARGETS.get(name, {}).items()}
        result["met"] = False
        result["met_by"] = per
        result["error"] = f"{type(e).__name__}: {e}"
    except Exception as e:  # report it and go on with the next workload
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback_tail"] = traceback.format_exc()[-600:]
        tail = server.log_tail(1200)
        if tail:
            result["server_log_tail"] = tail
    if server.outside_signals:
        result["outside_signals"] = server.outside_signals
    if server.died_with is not None:
        how = f"was killed by {_signame(-server.died_with)}" if server.died_with < 0 else "exited"
        result["error"] = result.get("error") or f"the server {how} during the workload"
        result["server_exit_code"] = server.died_with
        result.setdefault("server_log_tail", server.log_tail(1200))
    if profile_out is not None:
        result["profile"] = str(profile_out)
    if keep_dir and name not in IN_PROCESS:
        result["state_dir"] = str(server.dir)
    result["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["quick"] = quick
    result["bench_s"] = round(time.perf_counter() - started, 1)
    return result


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help=f"run only this workload (repeatable, or comma-separated): {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--quick", action="store_true", help="shorter submit-rate (10 s) and scale (1k vs 10k)")
    parser.add_argument(
        "--wrap",
        default="",
        help="command prefix for the server, for diagnosis, e.g. 'py-spy record -o out.svg --'",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="diagnosis: attach py-spy to each server and write <dir>/<workload>.collapsed.txt (needs py-spy)",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile-dir: sample only the thread holding the GIL (the server's Python CPU, not its waits)",
    )
    parser.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile-dir: sample waiting threads too (read with `python -m bench.profile_report FILE --idle "
        "--thread dispatcher`: where the engine's serial thread spends its wall time)",
    )
    parser.add_argument(
        "--array-poll",
        type=float,
        default=0.02,
        help="seconds between DescribeJobs of the array-10000 parent (default 0.02; diagnosis only)",
    )
    parser.add_argument(
        "--array-size",
        type=int,
        help="children of the array-1000000 workload (default 1,000,000; 100,000 with --quick)",
    )
    parser.add_argument(
        "--shield",
        action="store_true",
        help="run the server under bench.sigwatch: SIGUSR1/SIGUSR2/SIGHUP from other processes are blocked and "
        "counted (outside_signals) instead of killing it",
    )
    parser.add_argument("--keep", action="store_true", help="keep each server's temporary directory")
    args = parser.parse_args(argv)
    names: list[str] = []
    for item in args.workload or list(WORKLOADS):
        names += [n.strip() for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    wrap = args.wrap.split() if args.wrap else None
    if args.shield:
        wrap = [*(wrap or []), sys.executable, "-m", "bench.sigwatch", "--"]
    if args.profile_dir:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    errored = False
    for name in names:
        size = args.array_size or (100_000 if args.quick else 1_000_000)
        result = run_one(
            name,
            args.quick,
            wrap,
            args.keep,
            args.profile_dir,
            args.array_poll,
            args.profile_gil,
            args.profile_idle,
            array_size=size,
        )
        errored |= "error" in result
        print(json.dumps(result), flush=True)
    return 1 if errored else 0


if __name__ == "__main__":
    sys.exit(main())
