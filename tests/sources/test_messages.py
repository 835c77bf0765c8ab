"""The bad-input matrix: every kind of bad Kafka message, in each format, decoded and featurized.

Each case sends good, bad, good (the bad record in the middle) and checks: the bad record is one
dead letter with the reason, field and value named; the good records around it are trained (their
event ids come out, in order); schema drift is accepted and noticed, not dead-lettered.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.schema import FeatureConfig
from flinkdl.features.deadletter import DeadLetter, Notice
from flinkdl.features.transform import Featurizer
from flinkdl.sources.kafka import needed_columns
from flinkdl.sources.messages import MessageDecoder

FEATS = FeatureConfig(categorical=[{"name": "c", "type": "int"}, "s"], numeric=["n"], max_field_bytes=1000)
CSV_COLUMNS = ["event_id", "label", "c", "s", "n"]
BIG = "x" * (10 << 20)  # a 10 MB string


def csv_row(eid: object = 1, label: object = 1, c: object = 7, s: object = "a", n: object = 2.5) -> bytes:
    return f"{eid},{label},{c},{s},{n}".encode()


def json_row(**over: object) -> bytes:
    row = {"event_id": 1, "label": 1, "c": 7, "s": "a", "n": 2.5, **over}
    return json.dumps({k: v for k, v in row.items() if v is not DROP}).encode()


def arrow_msg(**cols: list) -> bytes:
    base = {"event_id": [10, 11, 12], "label": [0, 1, 0], "c": [1, 2, 3], "s": ["a", "b", "c"], "n": [1.0, 2.0, 3.0]}
    batch = pa.record_batch({k: v for k, v in {**base, **cols}.items() if v is not DROP})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


DROP = object()  #: leave the column/key out


@dataclass
class Out:
    trained: list[int]
    dead: list[DeadLetter]
    notices: list[Notice]


def run(fmt: str, msgs: list[bytes]) -> Out:
    """Decode like ``KafkaFeatures`` (row formats: one chunk; arrow: one message each) and featurize."""
    dec = MessageDecoder(fmt, needed_columns(FEATS), set(needed_columns(FEATS)), FEATS, CSV_COLUMNS)
    parts = [dec.rows(msgs, 0)] if fmt != "arrow" else [dec.arrow(m, 100 * i) for i, m in enumerate(msgs)]
    out = Out([], [], [])
    for raw, letters in parts:
        feats, more = Featurizer(FEATS).transform(raw)
        out.trained += feats.column("event_id").to_pylist()
        out.dead += [x for x in letters if isinstance(x, DeadLetter)] + more
        out.notices += [x for x in letters if isinstance(x, Notice)]
    return out


# kind id → (format, the bad message, reason, field, the value starts with)
ROWS = {
    "truncated_csv": ("csv", b"2,1,7", "field_count", None, "3 fields, expected 5"),
    "truncated_json": ("json", b'{"event_id": 2, "label": 1, "c"', "malformed", None, "not JSON"),
    "extra_fields_csv": ("csv", csv_row(2) + b",extra", "field_count", None, "6 fields, expected 5"),
    "wrong_type_id_csv": ("csv", csv_row(2, c="seven"), "bad_id", "c", "seven"),
    "wrong_type_number_json": ("json", json_row(event_id=2, n="abc"), "not_numeric", "n", "abc"),
    "wrong_type_nested_json": ("json", json_row(event_id=2, c=[1, 2]), "wrong_type", "c", "[1, 2]"),
    "wrong_type_not_object_json": ("json", b"[1, 2]", "malformed", None, "a JSON list"),
    "nan_csv": ("csv", csv_row(2, n="nan"), "not_finite", "n", "nan"),
    "inf_json": ("json", json_row(event_id=2, n=float("inf")), "not_finite", "n", "inf"),
    "nan_label_csv": ("csv", csv_row(2, label="nan"), "label_invalid", "label", "nan"),
    "long_string_csv": ("csv", csv_row(2, s=BIG), "field_too_long", "s", f"{len(BIG)} bytes: xxx"),
    "long_string_json": ("json", json_row(event_id=2, s=BIG), "field_too_long", "s", f"{len(BIG)} bytes: xxx"),
    "long_id_csv": ("csv", csv_row(BIG), "field_too_long", "event_id", f"{len(BIG)} bytes"),
    "empty_csv": ("csv", b"", "empty", None, "empty message"),
    "blank_json": ("json", b" \r\n ", "empty", None, "empty message"),
    "non_utf8_csv": ("csv", b"2,1,7,\xff\xfe,2.5", "undecodable", None, "byte 0xff at 6"),
    "non_utf8_json": ("json", b'{"event_id": 2, "s": "\xc3\x28"}', "undecodable", None, "byte 0xc3"),
    "label_2_csv": ("csv", csv_row(2, label=2), "label_out_of_range", "label", "2"),
    "label_minus_1_json": ("json", json_row(event_id=2, label=-1), "label_out_of_range", "label", "-1"),
    "label_half_csv": ("csv", csv_row(2, label=0.5), "label_out_of_range", "label", "0.5"),
    "missing_id_csv": ("csv", csv_row(""), "missing_id", "event_id", ""),
    "missing_id_json": ("json", json_row(event_id=DROP), "missing_id", "event_id", None),
    "null_id_json": ("json", json_row(event_id=None), "missing_id", "event_id", None),
    "new_column_csv": ("csv", csv_row(2) + b",new", "field_count", None, "6 fields"),
}


@pytest.mark.parametrize("kind", list(ROWS))
def test_bad_row_message_is_one_dead_letter_and_its_neighbours_are_trained(kind: str) -> None:
    fmt, bad, reason, field, value = ROWS[kind]
    good = csv_row if fmt == "csv" else (lambda eid: json_row(event_id=eid))
    out = run(fmt, [good(1), bad, good(3)])
    assert out.trained == [1, 3]
    (d,) = out.dead
    assert (d.reason, d.field, d.position) == (reason, field, 1)
    assert (d.value is None) if value is None else d.value.startswith(value), d.value
    assert len(d.to_json()) < 80_000  # a 10 MB record is cut, not copied into the dead letter


@pytest.mark.parametrize("fmt, msg", [
    ("csv", csv_row(2, label="")), ("json", json_row(event_id=2, label=DROP)),
    ("json", json_row(event_id=2, label=None)),
    ("arrow", arrow_msg(label=DROP)), ("arrow", arrow_msg(label=pa.array([None, None, None], pa.int64()))),
])
def test_unlabelled_message_is_kept_to_be_scored_not_dead_lettered(fmt: str, msg: bytes) -> None:
    """A null, empty or absent label: the event is featurized with label NaN (scored, not trained on)."""
    dec = MessageDecoder(fmt, needed_columns(FEATS), set(needed_columns(FEATS)), FEATS, CSV_COLUMNS)
    raw, letters = dec.rows([msg], 0) if fmt != "arrow" else dec.arrow(msg, 0)
    made = Featurizer(FEATS).featurize(raw)
    assert not letters and not made.dead and made.keep.all()
    assert np.isnan(made.batch.column("label").to_numpy()).all()


def test_non_utf8_message_keeps_its_bytes_in_base64() -> None:
    bad = b"2,1,7,\xff\xfe,2.5"
    (d,) = run("csv", [csv_row(1), bad]).dead
    assert d.raw_encoding == "base64" and base64.b64decode(d.raw) == bad
    assert json.loads(d.to_json())["raw_encoding"] == "base64"


def test_null_and_tombstone_values_are_empty_dead_letters() -> None:
    out = run("json", [b"", json_row(event_id=1), b""])  # Flink gives a null value as b""
    assert out.trained == [1] and [(d.reason, d.position) for d in out.dead] == [("empty", 0), ("empty", 2)]


def test_message_with_a_newline_stays_one_record() -> None:
    out = run("csv", [csv_row(1), csv_row(2) + b"\n" + csv_row(3), csv_row(4) + b"\r" + csv_row(5)])
    assert out.trained == [1]
    assert [(d.reason, d.position) for d in out.dead] == [("field_count", 1), ("field_count", 2)]


def test_schema_drift_new_json_key_is_accepted_and_noticed() -> None:
    out = run("json", [json_row(event_id=1), json_row(event_id=2, new_col="x"), json_row(event_id=3, new_col=5)])
    assert out.trained == [1, 2, 3] and out.dead == []
    assert [(n.kind, n.field, n.rows) for n in out.notices] == [("schema_drift", "new_col", 2)]


def test_schema_drift_in_the_slow_json_path_is_noticed_too() -> None:
    out = run("json", [json_row(event_id=1, new_col="x"), b"{", json_row(event_id=3, c="9")])
    assert out.trained == [1, 3] and [d.reason for d in out.dead] == ["malformed"]
    assert [(n.field, n.rows) for n in out.notices] == [("new_col", 1)]


# --------------------------------------------------------------------------- arrow: one message = a batch

ARROW = {  # kind id → (the bad message, reason, field, the value starts with)
    "corrupt_arrow": (b"ARROW1 but not really", "corrupt_arrow", None, ""),
    "truncated_arrow": (arrow_msg()[:200], "corrupt_arrow", None, ""),
    "empty_arrow": (b"", "empty", None, "empty message"),
    "missing_id_column_arrow": (arrow_msg(event_id=DROP), "missing_column", "event_id", "missing columns ['event_id']"),
    "nested_column_arrow": (arrow_msg(c=[[1], [2], [3]]), "wrong_type", "c", "column type list"),
}


@pytest.mark.parametrize("kind", list(ARROW))
def test_bad_arrow_message_is_one_dead_letter_and_other_messages_are_trained(kind: str) -> None:
    bad, reason, field, value = ARROW[kind]
    out = run("arrow", [arrow_msg(), bad, arrow_msg(event_id=[20, 21, 22])])
    assert out.trained == [10, 11, 12, 20, 21, 22]
    (d,) = out.dead
    assert (d.reason, d.field, d.position) == (reason, field, 100) and d.value.startswith(value)
    assert d.raw_encoding == "base64" and base64.b64decode(d.raw) == bad


ARROW_ROWS = {  # kind id → (columns of a 3-row message whose middle row is bad, reason, field, value)
    "nan_arrow": ({"n": [1.0, float("nan"), 3.0]}, "not_finite", "n", "nan"),
    "label_out_of_range_arrow": ({"label": [0, 2, 1]}, "label_out_of_range", "label", "2"),
    "null_id_arrow": ({"event_id": [10, None, 12]}, "missing_id", "event_id", None),
    "wrong_type_arrow": ({"c": ["1", "x", "3"]}, "bad_id", "c", "x"),
    "long_string_arrow": ({"s": ["a", BIG, "c"]}, "field_too_long", "s", f"{len(BIG)} bytes"),
}


@pytest.mark.parametrize("kind", list(ARROW_ROWS))
def test_bad_row_inside_an_arrow_message_costs_only_that_row(kind: str) -> None:
    cols, reason, field, value = ARROW_ROWS[kind]
    out = run("arrow", [arrow_msg(**cols)])
    assert out.trained == [10, 12]
    (d,) = out.dead
    assert (d.reason, d.field, d.position) == (reason, field, 1)
    assert (d.value is None) if value is None else d.value.startswith(value)


def test_schema_drift_new_arrow_column_is_accepted_and_noticed() -> None:
    out = run("arrow", [arrow_msg(extra=[1, None, 3], __position__=[9, 9, 9])])
    assert out.trained == [10, 11, 12] and out.dead == []
    assert sorted((n.field, n.rows) for n in out.notices) == [("__position__", 3), ("extra", 2)]


def test_an_unclosed_quote_costs_its_message_only() -> None:
    msgs = [csv_row(i) for i in range(1001)]
    msgs[500] = b'500,1,7,"unterminated,5'
    out = run("csv", msgs)
    assert [(d.reason, d.position) for d in out.dead] == [("malformed", 500)]
    assert out.trained == [i for i in range(1001) if i != 500]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_unsigned_64_bit_event_ids_are_trained(fmt: str) -> None:
    big = 10000169349117863715  # above 2^63 - 1, as half of Avazu's ids
    row = csv_row if fmt == "csv" else (lambda eid: json_row(event_id=eid))
    out = run(fmt, [row(1), row(big), row(2)])
    assert out.dead == [] and out.trained == [1, big - 2**64, 2]
