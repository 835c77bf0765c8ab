"""The Criteo-like click stream: determinism, schema, distributions, hidden model, drift, CSV."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from flinkdl.config.schema import GeneratorConfig
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.sources.generator import (
    FIELDS,
    ID_MASK,
    NUMS,
    SCHEMA,
    TRUTH_SCHEMA,
    ClickStream,
    _zipf_probs,
)


@pytest.fixture(scope="module")
def stream() -> ClickStream:
    return ClickStream(seed=7)


@pytest.fixture(scope="module")
def sample(stream: ClickStream) -> pa.Table:
    """50k pre-drift events with the truth column."""
    return pa.Table.from_batches([stream.batch(i, 5000, with_truth=True) for i in range(10)])


def test_same_batch_same_bytes(stream: ClickStream) -> None:
    a = stream.batch(3, 1000, with_truth=True)
    stream.batch(0, 77)  # order does not matter
    assert stream.batch(3, 1000, with_truth=True).equals(a)
    assert ClickStream(seed=7).batch(3, 1000, with_truth=True).equals(a)  # fresh instance / process
    assert not ClickStream(seed=8).batch(3, 1000).equals(stream.batch(3, 1000))


def test_batches_are_contiguous_and_size_independent(stream: ClickStream) -> None:
    ids = np.concatenate([stream.batch(i, 300).column("event_id").to_numpy() for i in range(4)])
    np.testing.assert_array_equal(ids, np.arange(1200))
    # an event is the same whatever batch it comes in
    assert stream.batch(0, 1200).slice(900).equals(stream.batch(3, 300))
    assert stream.batch(1, 600).slice(300).equals(stream.batch(3, 300))


def test_timestamps() -> None:
    s = ClickStream(start_ts_ms=1000, events_per_s=400.0)
    ts = s.batch(1, 10).column("ts").to_numpy()
    np.testing.assert_array_equal(ts, 1000 + (np.arange(10, 20) * 2.5).astype(np.int64))


def test_schema_and_dtypes(stream: ClickStream, sample: pa.Table) -> None:
    b = stream.batch(0, 100)
    assert b.schema == SCHEMA
    assert SCHEMA.names[:3] == ["event_id", "ts", "label"]
    assert SCHEMA.names[3:29] == [f"C{i}" for i in range(1, 27)]
    assert SCHEMA.names[29:] == [f"I{i}" for i in range(1, 14)]
    assert sample.schema == TRUTH_SCHEMA and TRUTH_SCHEMA.names[-1] == "p_true"
    assert set(np.unique(sample.column("label").to_numpy())) == {0, 1}
    p = sample.column("p_true").to_numpy()
    assert p.min() > 0.0 and p.max() < 1.0
    for i in range(1, 27):
        col = sample.column(f"C{i}")
        assert col.null_count == 0
        ids = col.to_numpy() - i * 10**7  # field Ck lives in [k * 10**7, k * 10**7 + 2**20)
        assert ids.min() >= 0 and ids.max() < 2**20
    for i in range(1, 14):
        x = sample.column(f"I{i}").to_numpy(zero_copy_only=False)
        x = x[~np.isnan(x)]
        assert (x >= 0).all() and (x == np.floor(x)).all()  # non-negative counts


def test_numeric_missing_rates_and_tails(sample: pa.Table) -> None:
    rates = np.array([sample.column(f"I{i}").null_count / sample.num_rows for i in range(1, 14)])
    np.testing.assert_allclose(rates, [m for _, _, m, _ in NUMS], atol=0.01)
    assert rates.min() == 0.0 and 0.35 < rates.max() <= 0.41
    x = sample.column("I5").drop_null().to_numpy()
    assert np.percentile(x, 99.9) > 20 * np.median(x)  # heavy tail


def test_zipf_head(sample: pa.Table) -> None:
    for name, f in [("C3", 2), ("C6", 5), ("C11", 10)]:
        vocab, s = FIELDS[f][:2]
        _, counts = np.unique(sample.column(name).to_numpy(), return_counts=True)
        counts = np.sort(counts)[::-1] / sample.num_rows
        assert counts[0] == pytest.approx(_zipf_probs(vocab, s)[0], abs=0.01)
        assert counts[: max(1, vocab // 100)].sum() > 0.3  # the top 1 % of the IDs are a large share
    c3 = sample.column("C3").to_numpy()
    values, counts = np.unique(c3, return_counts=True)
    assert values[np.argmax(counts)] - 3 * 10**7 > 10  # the most frequent ID is not 0, 1, 2
    assert len(values) > 10_000  # and the tail is long


def test_rank_to_id_map_is_injective(stream: ClickStream) -> None:
    for f, (vocab, *_) in enumerate(FIELDS):
        offset, mult, key = stream._idmap[f]
        ids = (((np.arange(vocab) * mult) & ID_MASK) ^ key) + offset
        assert len(np.unique(ids)) == vocab


def test_ctr(sample: pa.Table) -> None:
    assert 0.2 < np.mean(sample.column("label").to_numpy()) < 0.3


def test_oracle_auc(stream: ClickStream) -> None:
    a = stream.oracle_auc(100_000)
    assert 0.78 <= a <= 0.88


def test_auc_matches_sklearn(sample: pa.Table) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y = sample.column("label").to_numpy()
    p = np.round(sample.column("p_true").to_numpy(), 2)  # with ties
    assert auc_from_arrays(y, p) == pytest.approx(sklearn_metrics.roc_auc_score(y, p), abs=1e-12)


def test_drift_is_real() -> None:
    lm = pytest.importorskip("sklearn.linear_model")
    pre = pytest.importorskip("sklearn.preprocessing")
    s = ClickStream(seed=7, drift_at=60_000)
    w0, w1 = s._w[5]  # C6: fully re-drawn
    assert np.corrcoef(w0, w1)[0, 1] < 0.8

    def part(first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        t = pa.Table.from_batches([s.batch(i, 4000) for i in range(first, first + n)])
        return t.column("C6").to_numpy()[:, None], t.column("label").to_numpy()

    x_fit, y_fit = part(0, 10)  # events [0, 40k)
    x_pre, y_pre = part(10, 5)  # [40k, 60k): before the drift
    x_post, y_post = part(15, 5)  # [60k, 80k): after
    enc = pre.OneHotEncoder(handle_unknown="ignore").fit(x_fit)
    lr = lm.LogisticRegression(C=1.0, max_iter=200).fit(enc.transform(x_fit), y_fit)
    auc_pre = auc_from_arrays(y_pre, lr.decision_function(enc.transform(x_pre)))
    auc_post = auc_from_arrays(y_post, lr.decision_function(enc.transform(x_post)))
    assert auc_pre > 0.56 and auc_post < auc_pre - 0.04  # seed 7: 0.585 -> 0.496
    assert y_post.mean() > y_pre.mean()  # CTR shifts up


def test_batch_straddling_the_drift_matches_its_parts() -> None:
    s = ClickStream(seed=3, drift_at=150)
    whole = s.batch(0, 300, with_truth=True)
    parts = pa.Table.from_batches([s.batch(i, 50, with_truth=True) for i in range(6)])
    assert pa.Table.from_batches([whole]).equals(parts)


def test_to_csv_round_trip(stream: ClickStream, tmp_path) -> None:
    path = tmp_path / "events.csv"
    stream.to_csv(path, events=10_000, batch_size=4096)
    assert [p.name for p in tmp_path.iterdir()] == ["events.csv"]  # no temp file left behind
    header = path.read_text().split("\n", 1)[0]
    assert header == ",".join(SCHEMA.names)
    read = pacsv.read_csv(path)
    assert read.num_rows == 10_000 and read.schema.names == SCHEMA.names
    expected = pa.Table.from_batches([stream.batch(0, 10_000)])
    for name in SCHEMA.names:
        got = read.column(name).cast(SCHEMA.field(name).type)
        assert got.equals(expected.column(name)), name
    assert ",," in path.read_text()[:200_000]  # missing numerics are empty fields


def test_from_config_and_validation() -> None:
    cfg = GeneratorConfig(seed=11, drift_at=5, start_ts_ms=0, events_per_s=10.0)
    s = ClickStream.from_config(cfg)
    assert (s.seed, s.drift_at, s.start_ts_ms, s.events_per_s) == (11, 5, 0, 10.0)
    assert s.batch(0, 20).equals(ClickStream(11, 5, 0, 10.0).batch(0, 20))
    assert s.nbytes < 200 * 2**20
    with pytest.raises(ValueError):
        s.batch(-1, 10)
    with pytest.raises(ValueError):
        s.batch(0, 0)
    with pytest.raises(ValueError):
        ClickStream(seed=-1)
