"""The Docker executor keeps a stop asked of an attempt in its marker (compute/docker_state.py, ADR 0033), so a
restart re-attaching to its containers ends the attempt with the stop's reason when the stop decided its end: the
container still runs, or it finished after the stop was asked (an earlier end was its own); and one stopped before it
started is never started (nor launched again) by the restart."""

from __future__ import annotations

import time
from pathlib import Path

from chalicelib.compute.docker_state import LAUNCHED, STARTED, STOPPED_EARLY, Journal, stopped_after
from chalicelib.domain.jobs import TIMEOUT_REASON

REASON = 'stopped: "by the test"\nsecond line, é'  # any text: quotes, a newline, not ASCII


def test_the_first_stop_of_a_started_attempt_is_kept_until_its_end_is_recorded(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "docker-journal")
    try:
        assert journal.launching("j#1")
        journal.started("j#1")
        before = time.time()
        journal.record_stop("j#1", REASON)
        journal.record_stop("j#1", TIMEOUT_REASON)  # (only the first stop counts)
        stop = journal.stop_of("j#1")
        assert stop is not None and stop[1] == REASON and before - 1e-6 <= stop[0] <= time.time()
        assert journal.state("j#1") == STARTED and journal.was_started("j#1")
        journal.ended("j#1")
        assert journal.stop_of("j#1") is None and journal.state("j#1") == STARTED
        journal.record_stop("gone#1", REASON)  # no marker (an earlier version's attempt): nothing kept, no error
    finally:
        journal.close()


def test_a_stop_asked_before_the_start_is_kept_and_the_attempt_stays_launched_until_it_starts(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "docker-journal")
    try:
        assert journal.launching("j#1") and journal.launching("k#1")
        journal.record_stop("j#1", REASON)
        journal.record_stop("j#1", TIMEOUT_REASON)  # (only the first stop counts)
        # THEN it is kept, and the attempt is still LAUNCHED: nothing of it ran (a recovery ends it, unstarted)
        stop = journal.stop_of("j#1")
        assert stop is not None and stop[1] == REASON
        assert journal.state("j#1") == LAUNCHED and not journal.was_started("j#1")
        assert journal.marker("j#1").read_bytes()[:1] == STOPPED_EARLY
        # WHEN it starts all the same (the stop came between the watcher's check and the start: the watcher stops
        # it at once) THEN it is STARTED, the stop still kept (a re-attach ends it with the stop's reason)
        journal.started("j#1")
        assert journal.state("j#1") == STARTED and journal.stop_of("j#1") == stop
        # and once its end is recorded (here, of one never started) the stop goes, STARTED stays
        journal.record_stop("k#1", TIMEOUT_REASON)
        journal.ended("k#1")
        assert journal.state("k#1") == STARTED and journal.stop_of("k#1") is None
        assert journal.marker("k#1").read_bytes() == b"\0"
    finally:
        journal.close()


def test_a_stop_line_cut_short_or_unreadable_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "docker-journal")
    try:
        for key, text in {"a#1": '12.5 "cut', "b#1": 'x "r"\n', "c#1": '12.5 ["r"]\n', "d#1": '12.5 "kept"\n'}.items():
            journal.marker(key).write_bytes(b"\0" + text.encode())
        assert [journal.stop_of(k) for k in ("a#1", "b#1", "c#1", "d#1")] == [None, None, None, (12.5, "kept")]
    finally:
        journal.close()


def test_the_stop_decides_an_end_that_came_after_it() -> None:
    stop = (1_800_000_000.5, REASON)  # 2027-01-15T08:00:00.5Z
    ended = {"Status": "exited", "ExitCode": 0}
    assert stopped_after({"State": {"Status": "running"}}, stop) == REASON
    assert stopped_after({"State": {**ended, "FinishedAt": "2027-01-15T08:00:00.600000123Z"}}, stop) == REASON
    assert stopped_after({"State": {**ended, "FinishedAt": "2027-01-15T08:00:00.400000123Z"}}, stop) is None
    assert stopped_after({"State": {**ended, "FinishedAt": "not a time"}}, stop) == REASON
    assert stopped_after({"State": {"Status": "running"}}, None) is None
