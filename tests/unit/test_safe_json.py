"""The one reader of client JSON (api/safe_json.py) and the one parse of decimal text (domain/digits.py)."""

from __future__ import annotations

import pytest

from chalicelib.api import safe_json
from chalicelib.api.safe_json import MAX_BODY_BYTES, MAX_DEPTH, JsonRejected
from chalicelib.domain import digits


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_json_within_the_bounds_is_read_as_json_reads_it() -> None:
    text = '{"a": [1, 2.5, "\\u00e9\\ud83d\\ude00", {"b": null}], "c": true}'
    assert safe_json.loads(text) == {"a": [1, 2.5, "é😀", {"b": None}], "c": True}
    assert safe_json.loads(_nested(MAX_DEPTH)) is not None


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 1000, 100_000])
def test_nesting_past_the_bound_is_refused_however_deep(levels: int) -> None:
    with pytest.raises(JsonRejected, match=f"deeper than {MAX_DEPTH} levels"):
        safe_json.loads(_nested(levels))


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ('"\\ud800"', "The body: the value must be"),
        ('{"jobName": "a\\udfffb"}', "The body: jobName must be"),
        ('{"a": {"b": [0, "\\udc00"]}}', "The body: a.b[1] must be"),
        ('{"tags": {"\\ud800": "v"}}', "The body: the member name tags.'\\ud800' must be"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_where_it_is(text: str, member: str) -> None:
    with pytest.raises(JsonRejected, match=r"valid Unicode text; it holds the lone surrogate U\+D[89A-F]") as info:
        safe_json.loads(text, "The body")
    assert str(info.value).startswith(member), info.value


def test_a_surrogate_pair_is_text_not_two_lone_surrogates() -> None:
    assert safe_json.loads('"\\ud83d\\ude00"') == "😀"


@pytest.mark.parametrize("data", [b"{", b"\xff\xfe\x00", b"NaN-ish", b'{"n": ' + b"1" * 5000 + b"}", "{'single': 1}"])
def test_what_is_not_json_is_refused(data: bytes | str) -> None:
    with pytest.raises(JsonRejected, match="is not valid JSON"):
        safe_json.loads(data)


def test_a_body_over_the_bound_is_refused_unread() -> None:
    with pytest.raises(JsonRejected, match=f"at most {MAX_BODY_BYTES} bytes"):
        safe_json.loads(b" " * (MAX_BODY_BYTES + 1))


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("000123", 123), ("9" * 18, 10**18 - 1)],
)
def test_ascii_decimal_digits_parse(text: str, value: int) -> None:
    assert digits.parse(text) == value


@pytest.mark.parametrize(
    "text", ["", "\u00b2", "\u0661", "1\u00b2", "-1", "+1", " 1", "1.0", "0x1", "9" * 19, "1" * 5000]
)
def test_anything_else_is_none_never_an_error(text: str) -> None:
    assert digits.parse(text) is None
