"""Decimal integers in text (ids, revisions, page tokens, cron fields): the one guarded parse. Pure.

`str.isdigit()` is True for characters `int()` refuses ("²", "①") and `int()` refuses more than 4,300 digits
(Python's int_max_str_digits), so `s.isdigit() and int(s)` raised ValueError — a 500 — for `jobDefinition="x:²"` or a
5,000-digit revision. `parse` accepts ASCII digits only and at most MAX_DIGITS of them, so the result also fits the
64-bit integers every store and wire type uses.
"""

from __future__ import annotations

MAX_DIGITS = 18  # < 2**63: every value parses, and fits a signed 64-bit integer
INT32_MAX = 2**31 - 1  # the wire model's Integer (a job definition revision, for one)


def parse(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of `text` if it is 1 to `max_digits` ASCII decimal digits, else None."""
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
