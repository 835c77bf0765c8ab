"""Property test: Kafka csv/json/arrow messages with random corruptions lose nothing (see tests/fuzzing.py)."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from flinkdl.features.deadletter import DeadLetter
from flinkdl.sources.kafka import needed_columns
from flinkdl.sources.messages import MessageDecoder
from tests.fuzzing import (
    COLUMNS,
    CSV_CORRUPTIONS,
    FEATURES,
    FEATURIZER,
    JSON_CORRUPTIONS,
    check,
    corrupt_csv,
    corrupt_json,
    csv_line,
    events,
    expected_features,
    json_obj,
)


def decoder(fmt: str) -> MessageDecoder:
    return MessageDecoder(fmt, needed_columns(FEATURES), set(COLUMNS), FEATURES, COLUMNS)


@given(st.sampled_from(["csv", "json"]), events(), st.data())
def test_row_messages_lose_nothing(fmt, evs, data) -> None:
    table = CSV_CORRUPTIONS if fmt == "csv" else JSON_CORRUPTIONS
    msgs, intact, must_fail = [], {}, set()
    for e in evs:
        good = csv_line(e).encode() if fmt == "csv" else json.dumps(json_obj(e)).encode()
        kind = data.draw(st.none() | st.sampled_from(sorted(table)))
        if kind is None or kind == "duplicate":
            intact[len(msgs)] = e.eid
            msgs.append(good)
        if kind is not None:
            at = data.draw(st.integers(0, 10**6))
            bad = corrupt_csv(good.decode(), e, kind, at) if fmt == "csv" else corrupt_json(e, kind, at)
            if table[kind]:
                must_fail.add(len(msgs))
            msgs.append(bad)
        if data.draw(st.booleans()):
            must_fail.add(len(msgs))
            msgs.append(data.draw(st.sampled_from([b"", b" ", b"\r\n"])))  # blank / tombstone: an `empty` letter
    raw, letters = decoder(fmt).rows(msgs, 0)
    feats, more = FEATURIZER.transform(raw)
    dead = [x for x in letters if isinstance(x, DeadLetter)] + more
    check(len(msgs), pa.Table.from_batches([feats]), dead, intact, must_fail, expected_features(evs))


def arrow_bytes(evs, string_columns: bool) -> bytes:
    cols = {c: [getattr(e, c) for e in evs] for c in COLUMNS}
    batch = pa.record_batch({c: pa.array([str(v) if string_columns and c != "genres" else v for v in vals])
                             for c, vals in cols.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


@given(events(max_size=8), st.data())
def test_arrow_messages_lose_nothing(evs, data) -> None:
    """One message per event group; a corrupt message is one dead letter, never a silent loss or a crash."""
    dec = decoder("arrow")
    want = expected_features(evs)
    for e in evs:
        msg = arrow_bytes([e], data.draw(st.booleans()))
        kind = data.draw(st.sampled_from([None, "truncate", "flip", "empty", "drop_column"]))
        at = data.draw(st.integers(0, 10**6))
        if kind == "truncate":
            msg = msg[: at % len(msg)]
        elif kind == "flip":
            i = at % len(msg)
            msg = msg[:i] + bytes([msg[i] ^ (1 + at % 255)]) + msg[i + 1:]
        elif kind == "empty":
            msg = b""
        elif kind == "drop_column":
            t = pa.ipc.open_stream(msg).read_all().drop_columns(["movie"])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, t.schema) as w:
                w.write_table(t)
            msg = sink.getvalue().to_pybytes()
        raw, letters = dec.arrow(msg, 0)
        dead = [x for x in letters if isinstance(x, DeadLetter)]
        if dead:
            assert raw.num_rows == 0 and len(dead) == 1 and dead[0].position == 0
            continue
        feats, more = FEATURIZER.transform(raw)
        assert kind in (None, "flip", "truncate"), (kind, raw)
        if kind is None:
            assert more == [] and feats.num_rows == 1
            assert tuple(feats.column(i)[0].as_py() for i in range(1, feats.num_columns)) == want[e.eid]
        else:  # a flip that still reads: the row is one outcome, whatever its values
            assert feats.num_rows + len(more) == raw.num_rows == 1, (kind, raw, more)
