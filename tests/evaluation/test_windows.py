"""Window and bounded-memory AUC against scikit-learn on random, tied, drifting and one-class streams."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from flinkdl.config.schema import EvaluationConfig
from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.evaluator import OTHER_SLICE, StreamEvaluator
from flinkdl.evaluation.windows import SlidingCountAUC, SlidingTimeAUC, TumblingCountAUC, TumblingTimeAUC


def sk_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else None


def stream(kind: str, n: int = 40_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and float32 scores: random, heavily tied, drifting (quality flips half way), one class."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int64)
    if kind == "random":
        s = rng.random(n)
    elif kind == "tied":
        s = np.round(rng.random(n) * 0.3 + 0.3 * y, 2)  # ~60 distinct values
    elif kind == "drifting":
        signal = np.where(np.arange(n) < n // 2, 1.5, -0.5) * (2 * y - 1)
        s = 1 / (1 + np.exp(-(signal + rng.normal(size=n))))
    elif kind == "one_class":
        y[:] = 0
        s = rng.random(n)
    else:
        raise ValueError(kind)
    return y, s.astype(np.float32)


def batches(n: int, seed: int = 1):
    """Irregular batch boundaries, including empty batches."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, n, 60))
    return list(zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [n])), strict=True))


def assert_same(got: float | None, want: float | None) -> None:
    if want is None:
        assert got is None
    else:
        assert got is not None and abs(got - want) <= 1e-12


KINDS = ["random", "tied", "drifting", "one_class"]


@pytest.mark.parametrize("kind", KINDS)
def test_sliding_count_is_exact(kind: str) -> None:
    y, s = stream(kind)
    w = SlidingCountAUC(5000)
    for a, b in batches(y.size):
        w.update(y[a:b], s[a:b])
        lo = max(0, b - 5000)
        assert_same(w.get(), sk_auc(y[lo:b], s[lo:b]) if b else None)


@pytest.mark.parametrize("kind", KINDS)
def test_sliding_time_is_exact(kind: str) -> None:
    y, s = stream(kind)
    ts = np.sort(np.random.default_rng(3).integers(0, 200_000, y.size))  # ms, with equal timestamps
    w = SlidingTimeAUC(7_000.0)
    for a, b in batches(y.size):
        w.update(y[a:b], s[a:b], ts[a:b])
        if b:
            keep = (ts[:b] > ts[:b].max() - 7_000.0)
            assert_same(w.get(), sk_auc(y[:b][keep], s[:b][keep]))
            assert w.n_events == keep.sum()


@pytest.mark.parametrize("kind", KINDS)
def test_tumbling_count_is_exact(kind: str) -> None:
    y, s = stream(kind)
    w = TumblingCountAUC(3000)
    for a, b in batches(y.size):
        w.update(y[a:b], s[a:b])
        k = b // 3000
        assert_same(w.get(), sk_auc(y[(k - 1) * 3000:k * 3000], s[(k - 1) * 3000:k * 3000]) if k else None)
    assert w.closed == y.size // 3000


@pytest.mark.parametrize("kind", KINDS)
def test_tumbling_time_is_exact_and_counts_late_events(kind: str) -> None:
    y, s = stream(kind)
    ts = np.sort(np.random.default_rng(4).integers(0, 100_000, y.size)).astype(np.int64)
    w = TumblingTimeAUC(10_000.0)
    for a, b in batches(y.size):
        w.update(y[a:b], s[a:b], ts[a:b])
        if b and w.closed:
            k = int(w.last_window_end_ms // 10_000) - 1
            sel = (ts // 10_000) == k
            assert_same(w.get(), sk_auc(y[sel], s[sel]))
    assert w.closed == 9 and w.late == 0
    w.update(np.array([1, 0]), np.array([0.5, 0.5], np.float32), np.array([5, 95_000]))
    assert w.late == 1


@pytest.mark.parametrize("kind", KINDS)
def test_binned_cumulative_within_its_bound(kind: str) -> None:
    y, s = stream(kind, n=200_000)
    m = BinnedAUC(bins=1 << 20)
    for a, b in batches(y.size):
        m.update(y[a:b], s[a:b])
    want = sk_auc(y, s)
    if want is None:
        assert m.get() is None and m.error_bound is None
        return
    assert abs(m.get() - want) <= m.error_bound + 1e-12
    assert m.error_bound <= 1e-4


def test_binned_bound_is_honest_when_scores_crowd_one_bin() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(10_000) < 0.5).astype(int)
    s = (0.5 + 1e-4 * rng.random(10_000) + 1e-5 * y).astype(np.float32)  # all in a few coarse bins
    m = BinnedAUC(bins=1024)
    m.update(y, s)
    exact = sk_auc(y, s)
    assert abs(m.get() - exact) <= m.error_bound and m.error_bound > 0.1


def test_evaluator_windows_slices_and_calibration() -> None:
    cfg = EvaluationConfig(windows=[{"kind": "sliding_count", "size": 1000},
                                    {"kind": "tumbling_time", "size_s": 5}],
                           slice_field="country", max_slices=2, cumulative_bins=1 << 16)
    ev = StreamEvaluator(cfg)
    y, s = stream("random", n=6000)
    ts = np.arange(6000) * 2  # 2 ms apart: 12 s of event time
    countries = np.array(["de", "fr", "us"])[np.arange(6000) % 3]
    for a, b in batches(6000):
        ev.update(y[a:b], s[a:b], ts[a:b], countries[a:b])
    snap = ev.get()
    assert abs(snap.total.auc - sk_auc(y, s)) <= snap.total.auc_error_bound + 1e-12
    assert_same(snap.windows["sliding_count_1000"].auc, sk_auc(y[-1000:], s[-1000:]))
    assert_same(snap.windows["tumbling_time_5s"].auc, sk_auc(y[2500:5000], s[2500:5000]))
    assert snap.total.ctr == pytest.approx(y.mean())
    assert snap.total.mean_score == pytest.approx(s.mean(), rel=1e-6)
    assert snap.total.calibration == pytest.approx(s.mean() / y.mean(), rel=1e-6)
    assert set(snap.slices) == {"de", "fr", OTHER_SLICE}
    de = np.arange(6000) % 3 == 0
    assert abs(snap.slices["de"].auc - sk_auc(y[de], s[de])) <= snap.slices["de"].auc_error_bound
    assert snap.slices["de"].events == 2000


def test_evaluator_one_class_is_undefined() -> None:
    ev = StreamEvaluator(EvaluationConfig(cumulative_bins=1 << 12))
    ev.update(np.zeros(100), np.linspace(0, 1, 100, dtype=np.float32))
    snap = ev.get()
    assert snap.total.auc is None and snap.windows["sliding_count_100000"].auc is None
    assert snap.total.calibration is None and snap.total.logloss is not None
