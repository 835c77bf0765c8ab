"""Dead letters and notices: JSON shape, cutting of long values and raw records."""

from __future__ import annotations

import json

from flinkdl.features.deadletter import MAX_RAW_CHARS, REASONS, SCHEMA_DRIFT, DeadLetter, Notice


def test_long_value_and_raw_are_cut_and_the_size_kept() -> None:
    d = DeadLetter("field_too_long", "s", "v" * 1000, "r" * (MAX_RAW_CHARS + 5), 3)
    out = json.loads(d.to_json())
    assert len(out["value"]) < 250 and out["value"].endswith("(1000 chars in all)")
    assert len(out["raw"]) == MAX_RAW_CHARS and out["raw_bytes"] == MAX_RAW_CHARS + 5
    assert "raw_encoding" not in out and "raw_bytes" not in json.loads(DeadLetter("empty").to_json())


def test_dicts_are_what_to_json_writes() -> None:
    d = DeadLetter("undecodable", value="v", raw="/w==", position=3, raw_encoding="base64")
    assert json.loads(d.to_json()) == d.to_dict() and next(iter(d.to_dict())) == "reason"
    assert Notice(SCHEMA_DRIFT, "x", 2).to_dict() == {"notice": "schema_drift", "field": "x", "rows": 2,
                                                      "position": None}


def test_at_least_ten_kinds_of_reason() -> None:
    assert len(set(REASONS)) == len(REASONS) >= 10
