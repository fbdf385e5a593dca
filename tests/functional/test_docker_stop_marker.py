"""The Docker executor keeps a stop asked of a started attempt in its marker (compute/docker_state.py, ADR 0033), so a
restart re-attaching to its containers ends the attempt with the stop's reason when the stop decided its end: the
container still runs, or it finished after the stop was asked (an earlier end was its own)."""

from __future__ import annotations

import time
from pathlib import Path

from chalicelib.compute.docker_state import LAUNCHED, STARTED, Journal, stopped_after
from chalicelib.domain.jobs import TIMEOUT_REASON

REASON = 'stopped: "by the test"\nsecond line, é'  # any text: quotes, a newline, not ASCII


def test_the_first_stop_of_a_started_attempt_is_kept_until_its_end_is_recorded(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "docker-journal")
    try:
        assert journal.launching("j#1")
        journal.record_stop("j#1", REASON)  # LAUNCHED: nothing runs, nothing is kept (and it stays LAUNCHED)
        assert journal.stop_of("j#1") is None and journal.state("j#1") == LAUNCHED
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
