"""compact_json: the same text and values as the standard library, for what orjson refuses too."""

from __future__ import annotations

import json
import math

from chalicelib import compact_json
from chalicelib.store.jobs import job_body
from tests.unit.builders import a_job


def test_a_job_body_is_written_as_the_standard_library_writes_it() -> None:
    body = job_body(a_job(name="ünïcode-✓", tags={"k": "v"}, parameters={"n": "1"}))
    text = compact_json.dumps(body)
    assert text == json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert compact_json.loads(text) == json.loads(text)  # (tuples read back as lists, as they always did)


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    assert compact_json.dumps({1: "int key"}) == '{"1":"int key"}'
    assert compact_json.loads(compact_json.dumps({"big": 2**70})) == {"big": 2**70}


def test_text_the_standard_library_wrote_reads_back() -> None:
    assert math.isnan(compact_json.loads('{"x": NaN}')["x"])
    assert compact_json.loads(b'{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}
