"""Raw batch → feature batch: exact layout, typed == text, bad rows dead-lettered alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.schema import CRITEO_LIKE_FEATURES, DirectoryConfig, FeatureConfig
from flinkdl.exchange.schema import feature_schema, labelled
from flinkdl.features.hashing import bucketize, cross, field_seed, hash_strings, murmur3_32_int64, null_hash
from flinkdl.features.parse import parse_bytes, parse_text
from flinkdl.features.transform import Featurizer

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CRITEO = FeatureConfig.model_validate({**CRITEO_LIKE_FEATURES, "crosses": [["C1", "C2"], ["C3", "C26"]]})
COLUMNS = ["event_id", "ts", "label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]


def typed_batch(n: int = 300, seed: int = 0) -> pa.RecordBatch:
    """Like the built-in generator: int64 C*, float64 I* with nulls, int64 label and event_id."""
    rng = np.random.default_rng(seed)
    cols = {
        "event_id": pa.array(np.arange(1000, 1000 + n)),
        "ts": pa.array(np.arange(n) * 1000),
        "label": pa.array(rng.integers(0, 2, n)),
    }
    for i in range(1, 14):
        cols[f"I{i}"] = pa.array(np.round(rng.normal(0, 50, n), i % 3), mask=rng.random(n) < 0.2)
    for i in range(1, 27):
        hi = 2**63 - 1 if i == 26 else 10 ** (i % 19)
        cols[f"C{i}"] = pa.array(rng.integers(-hi, hi, n, endpoint=True))
    return pa.record_batch(cols)


def as_text(batch: pa.RecordBatch, delimiter: str = ",") -> str:
    def fmt(v: object) -> str:
        return "" if v is None else repr(v) if isinstance(v, float) else str(v)

    cols = [c.to_pylist() for c in batch.columns]
    return "\n".join(delimiter.join(fmt(c[r]) for c in cols) for r in range(batch.num_rows))


def test_layout_is_exact() -> None:
    out, dead = Featurizer(CRITEO).transform(typed_batch())
    assert dead == [] and out.num_rows == 300
    assert out.schema.equals(feature_schema(CRITEO), check_metadata=True)
    assert out.schema.names[:4] == ["event_id", "label", "id_0", "id_1"] and out.schema.names[-1] == "x_25"
    assert out.column("event_id").to_pylist() == list(range(1000, 1300))
    assert out.column("id_27").to_numpy().max() < 2**CRITEO.hash_bits


def test_typed_equals_csv_text() -> None:
    raw = typed_batch()
    typed, _ = Featurizer(CRITEO).transform(raw)
    cfg = DirectoryConfig(path="in", columns=COLUMNS)
    parsed, dead = parse_text(as_text(raw), cfg, CRITEO)
    assert dead == []
    from_text, dead = Featurizer(CRITEO).transform(parsed)
    assert dead == [] and from_text.equals(typed)
    # and as a chunked Table
    table = pa.Table.from_batches([raw.slice(0, 100), raw.slice(100)])
    assert Featurizer(CRITEO).transform(table)[0].equals(typed)


def test_sliced_string_batches() -> None:
    """Regression: pyarrow 16 ``pc.if_else`` corrupts sliced string arrays (apache/arrow#41479)."""
    raw = typed_batch()
    cfg = DirectoryConfig(path="in", columns=COLUMNS)
    as_strings = FeatureConfig.model_validate(
        {**CRITEO.model_dump(), "categorical": [{"name": f"C{i}", "type": "string"} for i in range(1, 27)]}
    )
    parsed, _ = parse_text(as_text(raw), cfg, CRITEO)
    fresh, _ = parse_text(as_text(raw.slice(37, 100)), cfg, CRITEO)
    for features in (CRITEO, as_strings):
        f = Featurizer(features)
        assert f.transform(parsed.slice(37, 100))[0].equals(f.transform(fresh)[0])


def test_ids_values() -> None:
    raw = typed_batch(50)
    out, _ = Featurizer(CRITEO).transform(raw)
    c1, c2 = (murmur3_32_int64(raw.column(c).to_numpy(), field_seed(0, c)) for c in ("C1", "C2"))
    assert out.column("id_0").to_pylist() == bucketize(c1, 22).tolist()
    assert out.column("id_26").to_pylist() == bucketize(cross(c1, c2, field_seed(0, "C1#C2")), 22).tolist()


def test_numeric_transform_and_missing() -> None:
    cfg = FeatureConfig(event_id=None, numeric=["a", {"name": "b", "transform": "identity"}])
    raw = pa.record_batch({"label": [0, 1, 1], "a": [-3.0, None, 10.0], "b": ["2.5", "", "-1e3"]})
    out, dead = Featurizer(cfg).transform(raw)
    assert dead == []
    want = [-math.log1p(3.0), 0.0, math.log1p(10.0)]
    assert np.allclose(out.column("x_0").to_numpy(), want)
    assert out.column("x_1").to_pylist() == [0.0, 1.0, 0.0]
    assert out.column("x_2").to_pylist() == [2.5, 0.0, -1000.0]
    assert out.column("x_3").to_pylist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("values", [[-3.0, None, -0.0, 0.0, 10.0], [None, -0.0, 0.0, 10.0, None]])
def test_log1p_is_signed_and_nulls_are_zero_to_the_bit(values: list[float | None]) -> None:
    """With or without negatives in the column (two code paths): sign(x) * log1p(|x|), nulls 0.0."""
    cfg = FeatureConfig(event_id=None, numeric=["a"])
    labels = pa.array([0.0, None, 1.0, 1.0, 0.0][:len(values)])
    out, _ = Featurizer(cfg).transform(pa.record_batch({"label": labels, "a": pa.array(values, pa.float64())}))
    x = np.array([0.0 if v is None else v for v in values])
    want = (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)
    assert out.column("x_0").to_numpy().tobytes() == want.tobytes()
    assert out.column("label").to_numpy()[1] != out.column("label").to_numpy()[1]  # no label: NaN


def test_missing_categoricals_hash_as_null() -> None:
    cfg = FeatureConfig(event_id=None, hash_bits=31, categorical=[{"name": "i", "type": "int"}, "s"])
    raw = pa.record_batch({"label": ["0", "1"], "i": ["", "5"], "s": ["", "x"]})
    out, _ = Featurizer(cfg).transform(raw)
    si, ss = field_seed(0, "i"), field_seed(0, "s")
    assert out.column("id_0").to_pylist() == [
        null_hash(si) % 2**31,
        int(murmur3_32_int64(np.array([5]), si)[0]) % 2**31,
    ]
    assert out.column("id_1").to_pylist() == [
        null_hash(ss) % 2**31,
        int(hash_strings(pa.array(["x"]), ss)[0]) % 2**31,
    ]
    typed = pa.record_batch({"label": [0, 1], "i": pa.array([None, 5], pa.int64()), "s": [None, "x"]})
    assert Featurizer(cfg).transform(typed)[0].equals(out)


def test_bad_rows_are_dead_lettered_and_the_rest_survive() -> None:
    cfg = FeatureConfig(categorical=[{"name": "c", "type": "int"}, "s"], numeric=["n"])
    rows = [  # event_id, label, c, s, n
        ("1", "1", "10", "a", "1.5"),
        ("2", "", "11", "b", "2"),  # no label: kept (scored, not trained on)
        ("3", "2", "12", "c", "3"),  # label_out_of_range
        ("4", "1", "1.5", "d", "4"),  # bad_id
        ("5", "0", "13", "e", "abc"),  # not_numeric
        ("6", "0", "14", "f", "inf"),  # not_finite
        ("x7", "1", "15", "g", "5"),  # bad_id (event id)
        ("8", "1", "16", "h", ""),
        ("9", "x", "zz", "i", "nan"),  # label first
    ]
    raw = pa.record_batch(list(zip(*rows, strict=True)), names=["event_id", "label", "c", "s", "n"])
    out, dead = Featurizer(cfg).transform(raw, position_offset=40)
    assert [(d.reason, d.field, d.value, d.raw, d.position) for d in dead] == [
        ("label_out_of_range", "label", "2", "3,2,12,c,3", 42),
        ("bad_id", "c", "1.5", "4,1,1.5,d,4", 43),
        ("not_numeric", "n", "abc", "5,0,13,e,abc", 44),
        ("not_finite", "n", "inf", "6,0,14,f,inf", 45),
        ("bad_id", "event_id", "x7", "x7,1,15,g,5", 46),
        ("label_invalid", "label", "x", "9,x,zz,i,nan", 48),
    ]
    good = pa.record_batch(list(zip(*[rows[i] for i in (0, 1, 7)], strict=True)), names=raw.schema.names)
    assert out.to_pydict().keys() == Featurizer(cfg).transform(good)[0].to_pydict().keys()
    assert out.drop_columns(["label"]).equals(Featurizer(cfg).transform(good)[0].drop_columns(["label"]))
    assert out.column("event_id").to_pylist() == [1, 2, 8]
    assert np.array_equal(out.column("label").to_numpy(), [1.0, np.nan, 1.0], equal_nan=True)
    made = Featurizer(cfg).featurize(raw, position_offset=40)  # the keep-mask names the rows that became features
    assert made.batch.drop_columns(["label"]).equals(out.drop_columns(["label"])) and made.dead == dead
    assert np.flatnonzero(made.keep).tolist() == [0, 1, 7] and len(made.keep) == raw.num_rows


def test_typed_bad_values() -> None:
    cfg = FeatureConfig(categorical=[{"name": "c", "type": "int"}], numeric=["n"])
    raw = pa.record_batch(
        {
            "event_id": pa.array([1, None, 3, 4, 5], pa.int64()),
            "label": pa.array([1.0, 0.0, 0.5, None, 1.0]),
            "c": pa.array([1.0, 2.0, 3.0, 4.0, 2.5]),
            "n": pa.array([2.0**60, 1.0, 1.0, 1.0, float("nan")]),
        }
    )
    out, dead = Featurizer(cfg).transform(raw)
    assert [(d.reason, d.field, d.value, d.position) for d in dead] == [
        ("missing_id", "event_id", None, 1),
        ("label_out_of_range", "label", "0.5", 2),
        ("bad_id", "c", "2.5", 4),
    ]
    assert out.column("event_id").to_pylist() == [1, 4]  # 4: no label, kept to be scored


def test_unsigned_64_bit_event_ids_and_int_fields_are_kept() -> None:
    cfg = FeatureConfig(categorical=[{"name": "c", "type": "int"}])
    big = ["10000169349117863715", "10000371904215119486", "1000009418151094273"]  # Avazu's `id` column
    raw = pa.record_batch({"event_id": big, "label": ["1", "0", "1"], "c": big[::-1]})
    out, dead = Featurizer(cfg).transform(raw)
    assert dead == [] and out.column("event_id").to_pylist() == [int(v) - 2**64 if int(v) >= 2**63 else int(v)
                                                                 for v in big]
    assert len(set(out.column("id_0").to_pylist())) == 3


def test_label_threshold_and_positions_from_parse() -> None:
    cfg = FeatureConfig(event_id=None, label={"column": "r", "threshold": 4}, categorical=["u"])
    d = DirectoryConfig(path="in", columns=["u", "r"], header=True)
    raw, dead = parse_text("u,r\na,5\nb,3.5\nc\nd,4\ne,x", d, cfg, first_position=7)
    out, dead2 = Featurizer(cfg).transform(raw, position_offset=999)  # the parse positions win
    assert out.column("label").to_pylist() == [1.0, 0.0, 1.0]
    assert out.column("event_id").to_pylist() == [7, 8, 10]
    assert [(x.reason, x.position) for x in dead + dead2] == [("field_count", 9), ("label_invalid", 11)]


def test_empty_batch() -> None:
    raw = typed_batch().slice(0, 0)
    out, dead = Featurizer(CRITEO).transform(raw)
    assert out.num_rows == 0 and dead == [] and out.schema.equals(feature_schema(CRITEO))


def test_movielens_head() -> None:
    path = DATA / "movielens-100k" / "ml-100k.inter"
    if not path.exists():
        pytest.skip(f"{path} not present")
    with path.open("rb") as f:
        head = b"".join(next(f) for _ in range(1000))
    columns = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    cfg = DirectoryConfig(path=path.parent, format="tsv", columns=columns, header=True)
    features = FeatureConfig(
        event_id=None,
        timestamp="timestamp:float",
        label={"column": "rating:float", "threshold": 4},
        categorical=columns[:2],
        crosses=[columns[:2]],
    )
    raw, dead = parse_bytes(head, cfg, features)
    out, dead2 = Featurizer(features, delimiter="\t").transform(raw)
    assert dead == dead2 == [] and out.num_rows == 999
    assert out.schema.names == ["event_id", "label", "id_0", "id_1", "id_2"]
    ratings = np.array([float(line.split(b"\t")[2]) for line in head.splitlines()[1:]])
    assert out.column("label").to_pylist() == (ratings >= 4).astype(float).tolist()
    assert out.column("event_id").to_pylist() == list(range(999))


def test_criteo_file_end_to_end() -> None:
    path = DATA / "criteo-tiny" / "dac_format_1k_train.txt"
    if not path.exists():
        pytest.skip(f"{path} not present")
    cat = [{"name": f"C{i}", "type": "string"} for i in range(1, 27)]  # real Criteo ids are hex strings
    features = FeatureConfig.model_validate(
        {**CRITEO_LIKE_FEATURES, "event_id": None, "timestamp": None, "categorical": cat}
    )
    cfg = DirectoryConfig(
        path=path.parent, format="tsv", columns=[c for c in COLUMNS if c not in ("event_id", "ts")]
    )
    raw, dead = parse_bytes(path.read_bytes(), cfg, features, pad_short_rows=True)
    out, dead2 = Featurizer(features, delimiter="\t").transform(raw)
    assert dead == dead2 == [] and out.num_rows == 1000
    assert 0 < np.mean(out.column("label").to_numpy()) < 0.5
    assert out.column("x_1").to_numpy().mean() > 0  # I1 is often missing


@pytest.mark.parametrize(
    ("column", "values", "reason", "value"),
    [
        ("s", ["a", "y" * 50, "c"], "field_too_long", "50 bytes: yyy"),  # string categorical
        ("c", ["1", "9" * 50, "3"], "field_too_long", "50 bytes: 999"),  # int categorical, before the cast
        ("n", ["1", "-inf", "3"], "not_finite", "-inf"),
        ("label", ["0", "-1", "1"], "label_out_of_range", "-1"),
        ("label", ["0", "NaN", "1"], "label_invalid", "NaN"),
        ("event_id", ["1", "", "3"], "missing_id", ""),
    ],
    ids=["long_string", "long_int_id", "inf", "label_minus_1", "label_nan", "missing_id"],
)
def test_one_bad_value_costs_one_row(column: str, values: list[str], reason: str, value: str) -> None:
    cfg = FeatureConfig(categorical=[{"name": "c", "type": "int"}, "s"], numeric=["n"], max_field_bytes=20)
    cols = {"event_id": ["1", "2", "3"], "label": ["0", "1", "1"], "c": ["1", "2", "3"], "s": ["a", "b", "c"],
            "n": ["1", "2", "3"], column: values}
    out, dead = Featurizer(cfg).transform(pa.record_batch(cols))
    assert out.column("event_id").to_pylist() == [1, 3]
    assert [(d.reason, d.field, d.position) for d in dead] == [(reason, column, 1)]
    assert dead[0].value.startswith(value)


def test_unlabelled_events_are_kept_with_the_no_label_flag() -> None:
    """A null, empty or absent label is not a dead letter: the row is kept, label NaN (``labelled`` false);
    a label that is present but invalid still is one."""
    cfg = FeatureConfig(categorical=["c"], numeric=["n"])
    raw = pa.record_batch({"event_id": ["1", "2", "3", "4", "5"], "label": ["1", "", None, "0", "7"],
                           "c": ["a", "b", "c", "d", "e"], "n": ["1", "2", "3", "4", "5"]})
    made = Featurizer(cfg).featurize(raw)
    assert made.keep.tolist() == [True, True, True, True, False]
    assert [(d.reason, d.value) for d in made.dead] == [("label_out_of_range", "7")]
    assert labelled(made.batch.column("label").to_numpy()).tolist() == [True, False, False, True]
    labelled_only = Featurizer(cfg).featurize(raw.filter(pa.array([True, False, False, True, False])))
    same = made.batch.filter(pa.array(labelled(made.batch.column("label").to_numpy())))
    assert same.equals(labelled_only.batch)  # the flag changes nothing else in the row
    thresholded = FeatureConfig(label={"column": "label", "threshold": 0.5}, categorical=["c"], numeric=["n"])
    y = Featurizer(thresholded).featurize(raw).batch.column("label").to_numpy()
    assert np.array_equal(y, [1.0, np.nan, np.nan, 0.0, 1.0], equal_nan=True)
