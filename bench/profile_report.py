"""Summarise a py-spy collapsed-stack file (`--format raw`): `python -m bench.profile_report FILE [--top N]`.

Prints, per thread, its share of the (non-idle) samples; then the top functions by self time and by inclusive time
("file:function"), restricted to this repository's code unless --all."""

from __future__ import annotations

import argparse
import collections
import re
import sys

# Leaf frames that are waiting, not working (py-spy counts some blocking calls as active).
IDLE_LEAVES = (
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "selectors.py:_PollLikeSelector.select",
    "socket.py:SocketIO.readinto",
    "bench/sigwatch.py:_watch",
    "subprocess.py:Popen._try_wait",
    "queue.py:Queue.get",
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def _frame(raw: str) -> str:
    m = _FRAME.match(raw.strip())
    if not m:
        return raw.strip()
    path = m.group("file")
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.split("/work/main/", 1)[-1]
    return f"{path}:{m.group('func')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--all", action="store_true", help="include library frames in the inclusive ranking")
    ap.add_argument("--thread", help="only stacks of threads whose name contains this")
    ap.add_argument("--idle", action="store_true", help="keep samples whose leaf is a wait (dropped by default)")
    args = ap.parse_args(argv)
    total = 0
    threads: collections.Counter[str] = collections.Counter()
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    with open(args.file) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
            frames = [fr for fr in frames if not fr.startswith(("thread ", "process "))]
            if args.thread and args.thread not in thread:
                continue
            names = [_frame(fr) for fr in frames]
            if not args.idle and names and names[-1] in IDLE_LEAVES:
                continue
            total += n
            threads[thread] += n
            if names:
                self_t[names[-1]] += n
            for name in set(names):
                if args.all or name.startswith(("chalicelib/", "app.py", "bench/")):
                    incl[name] += n
    print(f"samples: {total}")
    print("by thread:")
    for t, n in threads.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {t}")
    print("self time:")
    for name, n in self_t.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("inclusive (repository code):" if not args.all else "inclusive:")
    for name, n in incl.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
