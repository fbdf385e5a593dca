"""The local event bus keeps events.jsonl bounded: rotated by size, a fixed number of older files kept."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.events.local import LocalEventBus


def publish(bus: LocalEventBus, n: int) -> None:
    for i in range(n):
        bus.publish("Batch Job State Change", [f"arn:job/{i}"], {"jobId": f"job-{i:04d}", "status": "SUCCEEDED"})


def job_ids(path: Path) -> list[str]:
    return [json.loads(line)["detail"]["jobId"] for line in path.read_text().splitlines()]


def test_the_file_rotates_past_its_size_and_keeps_the_newest_backups(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    bus = LocalEventBus(path, account="123456789012", region="us-east-1", max_bytes=2_000, backups=2)
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e["detail"]["jobId"]))
    publish(bus, 60)
    bus.close()

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]  # .3 would exceed `backups`
    assert all((tmp_path / f).stat().st_size < 2_000 + 500 for f in files)  # one event past the limit at most
    # the files hold the newest events, oldest file first, with nothing lost or repeated between them
    kept = job_ids(tmp_path / "events.jsonl.2") + job_ids(tmp_path / "events.jsonl.1") + job_ids(path)
    assert kept == seen[-len(kept) :]
    assert len(seen) == 60 and kept[-1] == "job-0059"


def test_a_new_bus_appends_to_the_current_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = LocalEventBus(path, account="123456789012", region="us-east-1")
    publish(first, 2)
    first.close()
    second = LocalEventBus(path, account="123456789012", region="us-east-1")
    publish(second, 1)
    second.close()
    assert job_ids(path) == ["job-0000", "job-0001", "job-0000"]
