"""What the Docker launcher appends after the container ended (compute/docker_engine.unseen_lines, ADR 0016): the
lines the log follow missed, each once, from the engine's frames read `since` the latest appended millisecond."""

from __future__ import annotations

from chalicelib.compute.docker_engine import epoch_ms, unseen_lines

T = "2026-12-05T04:30:00.123456789Z"  # millisecond ...123
NEXT = "2026-12-05T04:30:00.124000001Z"
MS = epoch_ms(T.encode())


def frame(*lines: tuple[str, str]) -> bytes:
    return b"".join(f"{stamp} {text}\n".encode() for stamp, text in lines)


def test_lines_after_the_latest_appended_millisecond_are_new() -> None:
    frames = [frame((T, "a")), frame((NEXT, "last-no-newline"))]
    assert unseen_lines(frames, MS, ["a"]) == [(MS + 1, "last-no-newline")]


def test_in_that_millisecond_only_lines_beyond_those_appended_are_new_counted_by_text() -> None:
    frames = [frame((T, "same"), (T, "same"), (T, "same"), (T, "other"))]
    assert unseen_lines(frames, MS, ["same", "same"]) == [(MS, "same"), (MS, "other")]
    assert unseen_lines(frames, MS, ["same", "same", "same", "other"]) == []


def test_a_reattached_watcher_that_appended_nothing_skips_its_last_recorded_millisecond() -> None:
    frames = [frame((T, "known"), (NEXT, "new"))]
    assert unseen_lines(frames, MS, None) == [(MS + 1, "new")]


def test_without_a_known_timestamp_every_line_is_new() -> None:
    frames = [frame((T, "a"), (NEXT, "b"))]
    assert unseen_lines(frames, None, None) == [(MS, "a"), (MS + 1, "b")]
