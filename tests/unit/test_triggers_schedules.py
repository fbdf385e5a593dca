"""Schedule expressions (EventBridge syntax): parsing, next and latest fire times, time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import schedules
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.schedules import Cron, Rate

FIELD = "source.schedule.expression"
UTC_ZONE = schedules.zone("UTC", "tz")


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


def fires(expression: str, after: int, n: int = 3, tz: str = "UTC", anchor: int = 0) -> list[str]:
    """The next `n` fire times after `after`, as ISO strings."""
    schedule, zone = schedules.parse(expression, FIELD), schedules.zone(tz, "tz")
    out = []
    for _ in range(n):
        nxt = schedules.next_fire(schedule, after, anchor, zone)
        assert nxt is not None
        out.append(schedules.iso(nxt))
        after = nxt
    return out


# -- rate ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("rate(1 minute)", 1),
        ("rate(5 minutes)", 5),
        ("rate(1 hour)", 60),
        ("rate(12 hours)", 720),
        ("rate(1 day)", 1440),
        ("rate(7 days)", 10080),
        ("  rate( 2 minutes )  ", 2),
    ],
)
def test_rate_units(expression: str, minutes: int) -> None:
    assert schedules.parse(expression, FIELD) == Rate(minutes)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("rate(1 minutes)", "must be written rate(1 minute)"),
        ("rate(5 minute)", "must be written rate(5 minutes)"),
        ("rate(0 minutes)", "positive integer"),
        ("rate(3 weeks)", "unit must be minute(s), hour(s) or day(s)"),
        ("rate(3 seconds)", "unit must be minute(s)"),
        ("rate(-1 minutes)", "must be rate(value unit) or cron("),
        ("rate(1.5 hours)", "must be rate(value unit) or cron("),
        ("rate(1)", "must be rate(value unit) or cron("),
        ("at(2024-06-11T10:00:00)", "must be rate(value unit) or cron("),
        ("every 5 minutes", "must be rate(value unit) or cron("),
        ("", "must be rate(value unit) or cron("),
    ],
)
def test_bad_rates_name_the_field_and_the_rule(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        schedules.parse(expression, FIELD)
    assert str(info.value).startswith(FIELD)
    assert fragment in str(info.value)


def test_a_rate_fires_every_period_from_its_anchor() -> None:
    # GIVEN rate(5 minutes) anchored at 10:02:30 (the trigger's creation)
    anchor = ms(2024, 6, 11, 10, 2, 30)
    # THEN the first fire is one period later, then every period
    assert fires("rate(5 minutes)", anchor, anchor=anchor) == [
        "2024-06-11T10:07:30Z",
        "2024-06-11T10:12:30Z",
        "2024-06-11T10:17:30Z",
    ]
    # AND asking from before the anchor still gives the first fire one period after it
    assert fires("rate(5 minutes)", anchor - 3_600_000, 1, anchor=anchor) == ["2024-06-11T10:07:30Z"]
    # AND asking exactly at a fire time gives the next one (strictly after)
    assert fires("rate(5 minutes)", ms(2024, 6, 11, 10, 12, 30), 1, anchor=anchor) == ["2024-06-11T10:17:30Z"]


def test_latest_fire_of_a_rate() -> None:
    anchor = ms(2024, 6, 11, 10, 0)
    rate = Rate(60)
    assert schedules.latest_fire(rate, anchor + 59 * 60_000, anchor, UTC_ZONE) is None  # before the first
    assert schedules.latest_fire(rate, anchor + 60 * 60_000, anchor, UTC_ZONE) == anchor + 60 * 60_000
    assert schedules.latest_fire(rate, anchor + 150 * 60_000, anchor, UTC_ZONE) == anchor + 120 * 60_000


@given(st.integers(1, 10_000), st.integers(0, 10**12), st.integers(0, 10**10))
def test_next_rate_fire_is_the_first_period_boundary_after(minutes: int, anchor: int, delta: int) -> None:
    after = anchor + delta
    nxt = schedules.next_fire(Rate(minutes), after, anchor, UTC_ZONE)
    assert nxt is not None
    period = minutes * 60_000
    assert nxt > after and (nxt - anchor) % period == 0 and nxt - period <= max(after, anchor)


# -- cron: parsing ---------------------------------------------------------------------------------------------


def test_a_cron_parses_into_its_fields() -> None:
    cron = schedules.parse("cron(0/15 9-17 ? JAN,JUL MON-FRI 2024-2025)", FIELD)
    assert isinstance(cron, Cron)
    assert cron.minutes == (0, 15, 30, 45)
    assert cron.hours == tuple(range(9, 18))
    assert cron.months == (1, 7)
    assert cron.years == (2024, 2025)
    assert cron.day_of_month is None
    assert cron.day_of_week is not None and cron.day_of_week.days == frozenset({2, 3, 4, 5, 6})


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("cron(0 12 * * *)", "takes 6 fields"),
        ("cron(0 12 * * ? * *)", "takes 6 fields"),
        ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 12 * * ? *)", "cron minutes: 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "cron hours: 24 is out of range 0-23"),
        ("cron(0 12 0 * ? *)", "cron day-of-month: 0 is out of range 1-31"),
        ("cron(0 12 32 * ? *)", "cron day-of-month: 32 is out of range 1-31"),
        ("cron(0 12 * 13 ? *)", "cron month: 13 is out of range 1-12"),
        ("cron(0 12 * FOO ? *)", "cron month: 'FOO' is not a number or a name"),
        ("cron(0 12 ? * 8 *)", "cron day-of-week: 8 is out of range 1-7"),
        ("cron(0 12 ? * 0 *)", "cron day-of-week: 0 is out of range 1-7"),
        ("cron(0 12 ? * FUN *)", "cron day-of-week: 'FUN' is not a number or a name"),
        ("cron(0 12 ? * 2#6 *)", "cron day-of-week (#): 6 is out of range 1-5"),
        ("cron(0 12 ? * 1/2 *)", "steps (/) are not allowed in day-of-week"),
        ("cron(0 12 ? * 1,L *)", "L and # stand alone"),
        ("cron(0 12 ? * 1-2#2 *)", "L and # stand alone"),
        ("cron(0 12 1-5W * ? *)", "L and W stand alone"),
        ("cron(0 12 1,L * ? *)", "L and W stand alone"),
        ("cron(0 12 * * ? 1969)", "cron year: 1969 is out of range 1970-2199"),
        ("cron(0 12 * * ? 2200)", "cron year: 2200 is out of range 1970-2199"),
        ("cron(30-10 12 * * ? *)", "the range '30-10' ends before it starts"),
        ("cron(0/0 12 * * ? *)", "the step in '0/0' must be a positive integer"),
        ("cron(0,,5 12 * * ? *)", "empty list item"),
        ("cron(x 12 * * ? *)", "cron minutes: 'x' is not a number"),
    ],
)
def test_bad_crons_name_the_field_and_the_rule(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        schedules.parse(expression, FIELD)
    assert str(info.value).startswith(FIELD)
    assert fragment in str(info.value)


# -- cron: next fire times -------------------------------------------------------------------------------------

JUNE_1_2024 = ms(2024, 6, 1)  # a Saturday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # every day at 12:00; both name and number forms
        ("cron(0 12 * * ? *)", ["2024-06-01T12:00:00Z", "2024-06-02T12:00:00Z", "2024-06-03T12:00:00Z"]),
        # every 15 minutes from :00 (start/step, and */step)
        ("cron(0/15 * * * ? *)", ["2024-06-01T00:15:00Z", "2024-06-01T00:30:00Z", "2024-06-01T00:45:00Z"]),
        ("cron(*/20 * * * ? *)", ["2024-06-01T00:20:00Z", "2024-06-01T00:40:00Z", "2024-06-01T01:00:00Z"]),
        # a range with a step
        ("cron(10-30/10 8 * * ? *)", ["2024-06-01T08:10:00Z", "2024-06-01T08:20:00Z", "2024-06-01T08:30:00Z"]),
        # weekdays by name: June 1 2024 is a Saturday, so Monday the 3rd first
        ("cron(15 10 ? * MON-FRI *)", ["2024-06-03T10:15:00Z", "2024-06-04T10:15:00Z", "2024-06-05T10:15:00Z"]),
        # weekdays by number: 1 = SUN, 7 = SAT
        ("cron(0 8 ? * 1,7 *)", ["2024-06-01T08:00:00Z", "2024-06-02T08:00:00Z", "2024-06-08T08:00:00Z"]),
        # the third Friday (6#3)
        ("cron(0 10 ? * 6#3 *)", ["2024-06-21T10:00:00Z", "2024-07-19T10:00:00Z", "2024-08-16T10:00:00Z"]),
        ("cron(0 10 ? * FRI#3 *)", ["2024-06-21T10:00:00Z", "2024-07-19T10:00:00Z", "2024-08-16T10:00:00Z"]),
        # the fifth Monday exists only in some months
        ("cron(0 9 ? * 2#5 *)", ["2024-07-29T09:00:00Z", "2024-09-30T09:00:00Z", "2024-12-30T09:00:00Z"]),
        # the last Friday (6L), and L alone in day-of-week is Saturday
        ("cron(0 0 ? * 6L *)", ["2024-06-28T00:00:00Z", "2024-07-26T00:00:00Z", "2024-08-30T00:00:00Z"]),
        ("cron(0 0 ? * L *)", ["2024-06-08T00:00:00Z", "2024-06-15T00:00:00Z", "2024-06-22T00:00:00Z"]),
        # the last day of the month, whatever its length (leap February included)
        ("cron(0 18 L * ? *)", ["2024-06-30T18:00:00Z", "2024-07-31T18:00:00Z", "2024-08-31T18:00:00Z"]),
        ("cron(0 18 L 2 ? *)", ["2025-02-28T18:00:00Z", "2026-02-28T18:00:00Z", "2027-02-28T18:00:00Z"]),
        # the last weekday (LW): June 30 2024 is a Sunday -> Friday the 28th; August 31 a Saturday -> the 30th
        ("cron(0 9 LW * ? *)", ["2024-06-28T09:00:00Z", "2024-07-31T09:00:00Z", "2024-08-30T09:00:00Z"]),
        # the weekday nearest the 1st: Saturday June 1 -> Monday the 3rd (not back into May)
        ("cron(0 9 1W * ? *)", ["2024-06-03T09:00:00Z", "2024-07-01T09:00:00Z", "2024-08-01T09:00:00Z"]),
        # nearest the 15th: June 15 2024 is a Saturday -> Friday the 14th; September 15 a Sunday -> Monday the 16th
        ("cron(0 9 15W * ? *)", ["2024-06-14T09:00:00Z", "2024-07-15T09:00:00Z", "2024-08-15T09:00:00Z"]),
        # the 31st exists in some months only
        ("cron(0 0 31 * ? *)", ["2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z", "2024-10-31T00:00:00Z"]),
        # a year list ends the schedule
        ("cron(0 0 1 1 ? 2025,2027)", ["2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
        # months by name, days of month as a list
        ("cron(30 6 1,15 MAR,SEP ? *)", ["2024-09-01T06:30:00Z", "2024-09-15T06:30:00Z", "2025-03-01T06:30:00Z"]),
    ],
)
def test_next_cron_fires(expression: str, expected: list[str]) -> None:
    assert fires(expression, JUNE_1_2024, len(expected)) == expected


def test_a_schedule_that_never_fires_again_has_no_next_fire() -> None:
    cron = schedules.parse("cron(0 0 1 1 ? 2025,2027)", FIELD)
    assert schedules.next_fire(cron, ms(2027, 1, 1), 0, UTC_ZONE) is None
    feb_30 = schedules.parse("cron(0 0 30 2 ? *)", FIELD)
    assert schedules.next_fire(feb_30, JUNE_1_2024, 0, UTC_ZONE) is None


def test_next_fire_is_strictly_after_and_mid_minute_rounds_up() -> None:
    cron = schedules.parse("cron(* * * * ? *)", FIELD)
    assert schedules.next_fire(cron, ms(2024, 6, 1, 10, 0), 0, UTC_ZONE) == ms(2024, 6, 1, 10, 1)
    assert schedules.next_fire(cron, ms(2024, 6, 1, 10, 0, 30), 0, UTC_ZONE) == ms(2024, 6, 1, 10, 1)


# -- time zones ------------------------------------------------------------------------------------------------


def test_a_cron_runs_in_its_time_zone() -> None:
    # 09:00 in Paris is 07:00 UTC in summer (CEST) and 08:00 UTC in winter (CET)
    assert fires("cron(0 9 * * ? *)", ms(2024, 6, 1), 1, tz="Europe/Paris") == ["2024-06-01T07:00:00Z"]
    assert fires("cron(0 9 * * ? *)", ms(2024, 12, 1), 1, tz="Europe/Paris") == ["2024-12-01T08:00:00Z"]


def test_a_local_time_skipped_by_dst_does_not_fire_and_a_repeated_one_fires_once() -> None:
    # 02:30 does not exist in Paris on 2024-03-31 (clocks go 02:00 -> 03:00)
    assert fires("cron(30 2 * * ? *)", ms(2024, 3, 29), 3, tz="Europe/Paris") == [
        "2024-03-29T01:30:00Z",
        "2024-03-30T01:30:00Z",
        "2024-04-01T00:30:00Z",
    ]
    # 02:30 happens twice on 2024-10-27 (03:00 -> 02:00): it fires at the first one only
    assert fires("cron(30 2 * * ? *)", ms(2024, 10, 26, 12), 2, tz="Europe/Paris") == [
        "2024-10-27T00:30:00Z",
        "2024-10-28T01:30:00Z",
    ]


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "", "utc+2"])
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match=r"source\.schedule\.timezone must be an IANA time zone name"):
        schedules.zone(name, "source.schedule.timezone")


def test_latest_fire_of_a_cron_looks_back_an_hour() -> None:
    cron = schedules.parse("cron(0/10 * * * ? *)", FIELD)
    assert schedules.latest_fire(cron, ms(2024, 6, 1, 10, 25), 0, UTC_ZONE) == ms(2024, 6, 1, 10, 20)
    assert schedules.latest_fire(cron, ms(2024, 6, 1, 10, 20), 0, UTC_ZONE) == ms(2024, 6, 1, 10, 20)
    daily = schedules.parse("cron(0 9 * * ? *)", FIELD)
    assert schedules.latest_fire(daily, ms(2024, 6, 1, 9, 30), 0, UTC_ZONE) == ms(2024, 6, 1, 9)
    assert schedules.latest_fire(daily, ms(2024, 6, 1, 12), 0, UTC_ZONE) is None  # more than an hour late


@given(st.integers(ms(2000, 1, 1), ms(2100, 1, 1)))
def test_every_minute_fires_at_the_next_whole_minute(after: int) -> None:
    nxt = schedules.next_fire(schedules.parse("cron(* * * * ? *)", FIELD), after, 0, UTC_ZONE)
    assert nxt is not None and nxt % 60_000 == 0 and 0 < nxt - after <= 60_000


def test_iso() -> None:
    assert schedules.iso(ms(2024, 6, 11, 9, 30) + 999) == "2024-06-11T09:30:00Z"
