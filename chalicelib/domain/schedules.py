"""Schedule expressions in EventBridge (Scheduler) syntax: `rate(...)` and `cron(...)`, parsed and evaluated. Pure.

- `rate(value unit)`: value a positive integer, unit minute(s) / hour(s) / day(s), singular exactly when value is 1.
  A rate schedule fires every period counted from its anchor (the trigger's creation), first one period after it.
- `cron(minutes hours day-of-month month day-of-week year)`, all six fields, evaluated in the schedule's time zone:

  | field | values | wildcards |
  |---|---|---|
  | minutes | 0-59 | `, - * /` |
  | hours | 0-23 | `, - * /` |
  | day-of-month | 1-31 | `, - * ? /`, and alone: `L` (last day), `LW` (last weekday), `15W` (weekday nearest 15th) |
  | month | 1-12 or JAN-DEC | `, - * /` |
  | day-of-week | 1-7 or SUN-SAT (1 = SUN) | `, - * ?`, and alone: `L` (= SAT), `6L` (last FRI), `6#3` (third FRI) |
  | year | 1970-2199 | `, - * /` |

  Exactly one of day-of-month and day-of-week is `?`. Steps are `start/step`, `*/step` or `a-b/step`.
  Local times a DST change skips never fire; a repeated local time fires once (its first occurrence).

Everything raises InvalidRequest naming the field it was given, so API errors say which member is wrong.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.domain import digits
from chalicelib.domain.errors import InvalidRequest

MINUTE_MS = 60_000
_RATE = re.compile(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_UNITS = {"minute": 1, "hour": 60, "day": 1440}
_MONTHS = {
    m: i
    for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
MIN_YEAR, MAX_YEAR = 1970, 2199
LATE_WINDOW_MS = 60 * MINUTE_MS  # how far back `latest_fire` looks for a cron fire time


@dataclass(frozen=True)
class Rate:
    minutes: int


@dataclass(frozen=True)
class DayOfMonth:
    days: frozenset[int] = frozenset()
    last: bool = False  # L
    last_weekday: bool = False  # LW
    nearest_weekday: int | None = None  # nW


@dataclass(frozen=True)
class DayOfWeek:
    days: frozenset[int] = frozenset()  # 1 = SUN .. 7 = SAT
    last_of: int | None = None  # nL: the last such weekday of the month
    nth: tuple[int, int] | None = None  # n#k: (weekday, k)


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    day_of_month: DayOfMonth | None  # None: `?`
    day_of_week: DayOfWeek | None  # None: `?`


Schedule = Rate | Cron


def parse(expression: str, field: str) -> Schedule:
    text = expression.strip()
    if match := _RATE.fullmatch(text):
        return _rate(int(match.group(1)), match.group(2), field)
    if match := _CRON.fullmatch(text):
        return _cron(match.group(1), field)
    raise InvalidRequest(
        f"{field} must be rate(value unit) or cron(minutes hours day-of-month month day-of-week year); got {text!r}"
    )


def zone(name: str, field: str) -> tzinfo:
    """The IANA time zone `name` (e.g. Europe/Paris), or InvalidRequest. UTC needs no time zone database (a host
    without tzdata still runs UTC schedules)."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"{field} must be an IANA time zone name such as UTC or Europe/Paris; got {name!r}"
        ) from None


def _rate(value: int, unit: str, field: str) -> Rate:
    base = unit[:-1] if unit.endswith("s") else unit
    if base not in _UNITS:
        raise InvalidRequest(f"{field}: rate unit must be minute(s), hour(s) or day(s); got {unit!r}")
    if value < 1:
        raise InvalidRequest(f"{field}: rate value must be a positive integer")
    if (value == 1) != (unit == base):
        want = base if value == 1 else f"{base}s"
        raise InvalidRequest(f"{field}: rate({value} {unit}) must be written rate({value} {want})")
    return Rate(value * _UNITS[base])


# -- cron parsing ----------------------------------------------------------------------------------------------


def _cron(body: str, field: str) -> Cron:
    parts = body.split()
    if len(parts) != 6:
        raise InvalidRequest(
            f"{field}: cron takes 6 fields (minutes hours day-of-month month day-of-week year); got {len(parts)}"
        )
    minutes, hours, dom, month, dow, year = parts
    if (dom == "?") == (dow == "?"):
        raise InvalidRequest(f"{field}: exactly one of day-of-month and day-of-week must be '?'")
    return Cron(
        minutes=_values(minutes, 0, 59, {}, f"{field}: cron minutes"),
        hours=_values(hours, 0, 23, {}, f"{field}: cron hours"),
        months=_values(month, 1, 12, _MONTHS, f"{field}: cron month"),
        years=_values(year, MIN_YEAR, MAX_YEAR, {}, f"{field}: cron year"),
        day_of_month=None if dom == "?" else _day_of_month(dom, f"{field}: cron day-of-month"),
        day_of_week=None if dow == "?" else _day_of_week(dow, f"{field}: cron day-of-week"),
    )


def _number(token: str, lo: int, hi: int, names: dict[str, int], what: str) -> int:
    value = names.get(token.upper()) if names else None
    if value is None:
        value = digits.parse(token)
        if value is None:
            raise InvalidRequest(f"{what}: {token[:40]!r} is not a number{' or a name' if names else ''}")
    if not lo <= value <= hi:
        raise InvalidRequest(f"{what}: {value} is out of range {lo}-{hi}")
    return value


def _values(text: str, lo: int, hi: int, names: dict[str, int], what: str) -> tuple[int, ...]:
    """A field of `, - * /` items as the sorted values it selects."""
    selected: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidRequest(f"{what}: empty list item in {text!r}")
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            parsed = digits.parse(step_text)
            if parsed is None or parsed < 1:
                raise InvalidRequest(f"{what}: the step in {item[:40]!r} must be a positive integer")
            step = parsed
        if span == "*":
            start, end = lo, hi
        elif "-" in span:
            a, _, b = span.partition("-")
            start, end = _number(a, lo, hi, names, what), _number(b, lo, hi, names, what)
            if end < start:
                raise InvalidRequest(f"{what}: the range {span!r} ends before it starts")
        else:
            start = _number(span, lo, hi, names, what)
            end = hi if step_text else start
        selected.update(range(start, end + 1, step))
    return tuple(sorted(selected))


def _day_of_month(text: str, what: str) -> DayOfMonth:
    upper = text.upper()
    if upper == "L":
        return DayOfMonth(last=True)
    if upper == "LW":
        return DayOfMonth(last_weekday=True)
    if upper.endswith("W") and not any(c in upper for c in ",-*/L"):
        return DayOfMonth(nearest_weekday=_number(upper[:-1], 1, 31, {}, what))
    if "L" in upper or "W" in upper or "#" in upper:
        raise InvalidRequest(f"{what}: L and W stand alone (L, LW, or a day followed by W); got {text!r}")
    return DayOfMonth(days=frozenset(_values(text, 1, 31, {}, what)))


def _day_of_week(text: str, what: str) -> DayOfWeek:
    upper = text.upper()
    if upper == "L":
        return DayOfWeek(days=frozenset({7}))
    if ("L" in upper or "#" in upper) and any(c in upper for c in ",-*/"):
        raise InvalidRequest(f"{what}: L and # stand alone (L, 6L, 6#3), not in lists or ranges; got {text!r}")
    if "#" in upper:
        day, _, nth = upper.partition("#")
        return DayOfWeek(nth=(_number(day, 1, 7, _DAYS, what), _number(nth, 1, 5, {}, f"{what} (#)")))
    if upper.endswith("L"):
        return DayOfWeek(last_of=_number(upper[:-1], 1, 7, _DAYS, what))
    if "L" in upper:  # no day name contains an L
        raise InvalidRequest(f"{what}: L stands alone or after one day (6L); got {text!r}")
    if "/" in upper:
        raise InvalidRequest(f"{what}: steps (/) are not allowed in day-of-week; got {text!r}")
    return DayOfWeek(days=frozenset(_values(text, 1, 7, _DAYS, what)))


# -- evaluation ------------------------------------------------------------------------------------------------


def cron_weekday(d: datetime) -> int:
    """1 = Sunday .. 7 = Saturday."""
    return (d.weekday() + 1) % 7 + 1


def _days(cron: Cron, year: int, month: int) -> list[int]:
    """The days of this month on which the cron fires, ascending."""
    length = calendar.monthrange(year, month)[1]
    dom, dow = cron.day_of_month, cron.day_of_week
    if dom is not None:
        if dom.last:
            return [length]
        if dom.last_weekday:
            return [_nearest_weekday(year, month, length, length)]
        if dom.nearest_weekday is not None:
            n = dom.nearest_weekday
            return [_nearest_weekday(year, month, n, length)] if n <= length else []
        return [d for d in sorted(dom.days) if d <= length]
    assert dow is not None
    weekday = {d: cron_weekday(datetime(year, month, d)) for d in range(1, length + 1)}
    if dow.last_of is not None:
        return [max(d for d, w in weekday.items() if w == dow.last_of)]
    if dow.nth is not None:
        day, k = dow.nth
        matching = [d for d, w in weekday.items() if w == day]
        return [matching[k - 1]] if k <= len(matching) else []
    return [d for d, w in weekday.items() if w in dow.days]


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The Monday-Friday nearest `day`, without leaving the month."""
    w = cron_weekday(datetime(year, month, day))
    if w == 7:  # Saturday: Friday before, or Monday after when the 1st
        return day - 1 if day > 1 else day + 2
    if w == 1:  # Sunday: Monday after, or Friday before when the last day
        return day + 1 if day < length else day - 2
    return day


def _to_ms(d: datetime) -> int:
    return int(d.timestamp()) * 1000


def next_cron(cron: Cron, after_ms: int, tz: tzinfo) -> int | None:
    """The first fire time strictly after `after_ms` (epoch ms), or None if there is none (before year 2200)."""
    local_after = datetime.fromtimestamp(after_ms / 1000, tz).replace(tzinfo=None)
    start = local_after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for year in (y for y in cron.years if y >= start.year):
        for month in cron.months:
            if (year, month) < (start.year, start.month):
                continue
            for day in _days(cron, year, month):
                if (year, month, day) < (start.year, start.month, start.day):
                    continue
                for hour in cron.hours:
                    for minute in cron.minutes:
                        local = datetime(year, month, day, hour, minute)
                        if local < start:
                            continue
                        instant = local.replace(tzinfo=tz).astimezone(UTC)
                        if instant.astimezone(tz).replace(tzinfo=None) != local:
                            continue  # skipped by a DST change
                        if (ms := _to_ms(instant)) > after_ms:
                            return ms
    return None


def next_fire(schedule: Schedule, after_ms: int, anchor_ms: int, tz: tzinfo) -> int | None:
    """The first fire time strictly after `after_ms`. Rates count from `anchor_ms` (their first fire is one period
    after it); cron ignores the anchor."""
    if isinstance(schedule, Rate):
        period = schedule.minutes * MINUTE_MS
        k = max(1, (after_ms - anchor_ms) // period + 1)
        return anchor_ms + k * period
    return next_cron(schedule, after_ms, tz)


def latest_fire(schedule: Schedule, at_ms: int, anchor_ms: int, tz: tzinfo) -> int | None:
    """The last fire time at or before `at_ms` (for cron: within LATE_WINDOW_MS of it), or None."""
    if isinstance(schedule, Rate):
        period = schedule.minutes * MINUTE_MS
        k = (at_ms - anchor_ms) // period
        return anchor_ms + k * period if k >= 1 else None
    last = None
    fire = next_cron(schedule, at_ms - LATE_WINDOW_MS - 1, tz)
    while fire is not None and fire <= at_ms:
        last, fire = fire, next_cron(schedule, fire, tz)
    return last


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC to the second, as EventBridge writes event times (2024-06-11T09:30:00Z)."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
