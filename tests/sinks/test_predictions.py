"""PredictionWriter / read_predictions round trips and appends; DeadLetterWriter appends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from flinkdl.config.schema import PredictionsSink
from flinkdl.evaluation import auc_from_arrays
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.sinks.deadletter import DeadLetterWriter
from flinkdl.sinks.predictions import FILE_SCHEMA, PredictionWriter, part_path, read_predictions

FORMATS = [("csv", "preds.csv"), ("jsonl", "preds.jsonl")]


def make_batch(n: int, seed: int = 0, start: int = 0) -> pa.RecordBatch:
    rng = np.random.default_rng(seed)
    score = rng.random(n, dtype=np.float32)
    edge = np.array([0.0, 1.0, 1e-45, 1e-8, np.nextafter(np.float32(1), np.float32(0)), 0.1], np.float32)
    score[: edge.size] = edge[: min(n, edge.size)]
    label = (rng.random(n) < score).astype(np.float32)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.arange(start, start + n)),
            pa.array(score),
            pa.array(label),
            pa.array(rng.integers(0, 9, n)),
        ],
        schema=PREDICTION_SCHEMA,
    )


def bits(table: pa.Table | pa.RecordBatch, col: str = "score") -> np.ndarray:
    return table.column(col).to_numpy().view(np.uint32)


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_round_trip_exact(tmp_path: Path, fmt: str, name: str) -> None:
    path = tmp_path / "sub" / "dir" / name  # parents are created
    batches = [make_batch(4096, seed=i, start=4096 * i) for i in range(2)] + [make_batch(1808, 9, 8192)]
    with PredictionWriter(PredictionsSink(path=path, format=fmt)) as w:
        for b in batches:
            w.write(b)
        w.flush()
        assert w.rows == 10_000
    back = read_predictions(path)
    want = pa.Table.from_batches(batches)
    assert back.schema.equals(PREDICTION_SCHEMA) and back.num_rows == 10_000
    assert back.equals(want)
    np.testing.assert_array_equal(bits(back), bits(want))  # bit for bit, 0.0 / 1.0 / denormal included
    assert auc_from_arrays(back["label"].to_numpy(), back["score"].to_numpy()) == auc_from_arrays(
        want["label"].to_numpy(), want["score"].to_numpy()
    )


def test_csv_scores_also_survive_a_float64_reader(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    with PredictionWriter(PredictionsSink(path=path)) as w:
        w.write(make_batch(10_000))
    as_double = pacsv.read_csv(path)["score"].to_numpy()  # inferred float64, as pandas would
    np.testing.assert_array_equal(as_double.astype(np.float32).view(np.uint32), bits(make_batch(10_000)))


def test_jsonl_lines_are_json(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionWriter(PredictionsSink(path=path, format="jsonl")) as w:
        w.write(make_batch(3))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"event_id": 0, "score": 0, "label": 0, "model_version": rows[0]["model_version"],
                       "model_age_ms": None}  # not given: unknown
    assert [r["score"] for r in rows] == [0.0, 1.0, 1e-45]


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_model_age_is_written_per_batch_and_read_back(tmp_path: Path, fmt: str, name: str) -> None:
    sink = PredictionsSink(path=tmp_path / name, format=fmt)
    with PredictionWriter(sink) as w:
        w.write(make_batch(3), model_age_ms=1234)
        w.write(make_batch(2, start=3))
    back = read_predictions(sink.path, freshness=True)
    assert back.schema.equals(FILE_SCHEMA)
    assert back["model_age_ms"].to_pylist() == [1234, 1234, 1234, None, None]
    assert read_predictions(sink.path).schema.equals(PREDICTION_SCHEMA)  # the default: as before


def test_a_file_without_model_age_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text("event_id,score,label,model_version\n1,0.5,1,3\n")
    back = read_predictions(path, freshness=True)
    assert back.to_pylist() == [{"event_id": 1, "score": 0.5, "label": 1.0, "model_version": 3, "model_age_ms": None}]


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_reopen_appends_without_second_header(tmp_path: Path, fmt: str, name: str) -> None:
    sink = PredictionsSink(path=tmp_path / name, format=fmt)
    a, b = make_batch(100, seed=1), make_batch(50, seed=2, start=100)
    with PredictionWriter(sink) as w:
        w.write(a)
    with PredictionWriter(sink) as w:
        w.write(pa.Table.from_batches([b]))
    assert read_predictions(sink.path).equals(pa.Table.from_batches([a, b]))
    assert sink.path.read_text().count("event_id") == (1 if fmt == "csv" else 150)


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_torn_last_line_is_cut_on_reopen(tmp_path: Path, fmt: str, name: str) -> None:
    sink = PredictionsSink(path=tmp_path / name, format=fmt)
    a, b = make_batch(20, seed=1), make_batch(5, seed=2, start=20)
    with PredictionWriter(sink) as w:
        w.write(a)
    with open(sink.path, "ab") as f:
        f.write(b"99,0.5,1," if fmt == "csv" else b'{"event_id":99,"sco')  # crash mid-row
    with PredictionWriter(sink) as w:
        w.write(b)
    assert read_predictions(sink.path).equals(pa.Table.from_batches([a, b]))


def test_torn_header_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b'"event_id","sc')
    with PredictionWriter(PredictionsSink(path=path)) as w:
        w.write(make_batch(5))
    assert read_predictions(path).equals(pa.Table.from_batches([make_batch(5)]))


def test_parts_and_reading_several(tmp_path: Path) -> None:
    sink = PredictionsSink(path=tmp_path / "preds.csv")
    for part in range(3):
        with PredictionWriter(sink, part=part) as w:
            w.write(make_batch(10, seed=part, start=10 * part))
    assert part_path(sink.path, 2) == tmp_path / "preds-2.csv"
    parts = sorted(tmp_path.glob("preds-*.csv"))
    assert len(parts) == 3 and not sink.path.exists()
    assert read_predictions(parts)["event_id"].to_pylist() == list(range(30))


def test_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="another header"):
        PredictionWriter(PredictionsSink(path=path))
    w = PredictionWriter(PredictionsSink(path=tmp_path / "q.csv"))
    wrong = make_batch(3).set_column(1, "score", pa.array([0.1, 0.2, 0.3], pa.float64()))
    with pytest.raises(ValueError, match=r"score: double \(want float\)"):
        w.write(wrong)
    with pytest.raises(ValueError, match="model_version: missing"):
        w.write(make_batch(3).drop_columns(["model_version"]))
    w.write(make_batch(0))
    w.close()
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write(make_batch(1))
    assert read_predictions(tmp_path / "q.csv").num_rows == 0  # header only


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_reordered_columns_nulls_and_nan(tmp_path: Path, fmt: str, name: str) -> None:
    b = pa.RecordBatch.from_pydict(
        {"label": [None, 1.0], "model_version": [1, None], "score": [float("nan"), 0.25], "event_id": [5, 6]},
        schema=pa.schema(
            [PREDICTION_SCHEMA.field(n) for n in ["label", "model_version", "score", "event_id"]]
        ),
    )
    with PredictionWriter(PredictionsSink(path=tmp_path / name, format=fmt)) as w:
        w.write(b)
    back = read_predictions(tmp_path / name)
    assert back.to_pydict() == {
        "event_id": [5, 6],
        "score": [None, 0.25],
        "label": [None, 1.0],
        "model_version": [1, None],
    }
    (tmp_path / "empty.jsonl").touch()
    assert read_predictions(tmp_path / "empty.jsonl").schema.equals(PREDICTION_SCHEMA)


class Letter:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def to_json(self) -> str:
        return json.dumps({"reason": self.reason})


def test_dead_letters_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "run" / "dead_letter.jsonl"
    dl = DeadLetterWriter(path)
    assert dl.write([]) == 0 and not path.exists()  # created lazily
    assert dl.write([Letter("bad_label"), '{"reason": "parse", "line": "a,b"}']) == 2
    dl.close()
    with open(path, "ab") as f:
        f.write(b'{"reason": "tor')  # crash mid-line
    with DeadLetterWriter(path) as dl2:
        dl2.write(iter([{"reason": "arity", "n": 3}, "plain text\nover two lines", Letter("x")]))
        assert dl2.count == 3
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"reason": "bad_label"},
        {"reason": "parse", "line": "a,b"},
        {"reason": "arity", "n": 3},
        {"message": "plain text\nover two lines"},
        {"reason": "x"},
    ]
    with pytest.raises(TypeError):
        DeadLetterWriter(tmp_path / "d.jsonl").write([42])
