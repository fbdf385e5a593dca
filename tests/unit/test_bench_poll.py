"""bench/workloads.py array-1000000's poll of its parent: a second apart while the array is far from its end, then
down to FINE_POLL_S, so that the wall time of a short run is not rounded up to the next second."""

from __future__ import annotations

from bench.workloads import FINE_POLL_S, _next_poll


def test_far_from_the_end_it_polls_once_a_second() -> None:
    assert _next_poll(1.0, done=1_000, size=20_000, elapsed=1.0) == 1.0  # 19 s to go
    assert _next_poll(1.0, done=0, size=20_000, elapsed=3.0) == 1.0  # no rate yet


def test_near_the_end_it_polls_at_half_the_time_left_and_no_faster_than_the_fine_poll() -> None:
    assert _next_poll(1.0, done=19_000, size=20_000, elapsed=19.0) == 0.5  # 1 s to go
    assert _next_poll(1.0, done=19_990, size=20_000, elapsed=20.0) == FINE_POLL_S  # 10 ms to go
