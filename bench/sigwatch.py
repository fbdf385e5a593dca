"""Diagnosis only: run `batchplane` with SIGUSR1/SIGUSR2/SIGHUP blocked and reported (sender pid and command line)
instead of killing the server. `python -m bench --wrap "python -m bench.sigwatch --"` ... (the server's argv
follows "--")."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

WATCHED = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return "?"


def _watch() -> None:
    while True:
        info = signal.sigwaitinfo(WATCHED)
        print(
            f"sigwatch: got signal {info.si_signo} from pid {info.si_pid} (uid {info.si_uid}): {_cmdline(info.si_pid)}",
            flush=True,
        )


def main() -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # before any other thread exists: all inherit the mask
    threading.Thread(target=_watch, name="sigwatch", daemon=True).start()
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    # argv is "<python> -m app up ...": run the `batchplane` command in this process.
    i = argv.index("-m")
    sys.argv = [argv[i + 1], *argv[i + 2 :]]
    from app import app
    from chalicelib.cli import main as cli_main

    return cli_main(sys.argv[1:], app=app)


if __name__ == "__main__":
    sys.exit(main())
