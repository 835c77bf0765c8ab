"""ProgressiveAUC / LogLoss against sklearn and brute force, over many batchings of the same stream."""

from __future__ import annotations

import inspect
import itertools
import pickle
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from flinkdl.evaluation import LogLoss, MeanScore, Metric, ObservedCTR, ProgressiveAUC, auc_from_arrays
from flinkdl.evaluation.maths import auc_from_counts


def sk_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    if "y_proba" in inspect.signature(log_loss).parameters:  # sklearn >= 1.9 renamed y_pred
        return log_loss(y, y_proba=p, labels=[0, 1])
    return log_loss(y, p, labels=[0, 1])


def stream(n: int, seed: int = 0, decimals: int | None = None, drift: bool = False):
    rng = np.random.default_rng(seed)
    s = rng.random(n, dtype=np.float32)
    if decimals is not None:
        s = np.round(s, decimals).astype(np.float32)
    p = s.astype(np.float64) if not drift else np.where(np.arange(n) < n // 2, s, 1.0 - s)
    y = (rng.random(n) < p).astype(np.float32)
    return y, s


def feed(m: Metric, y: np.ndarray, s: np.ndarray, cuts: np.ndarray) -> None:
    for a, b in itertools.pairwise(cuts):
        m.update(y[a:b], s[a:b])


def random_cuts(n: int, rng: np.random.Generator, k: int) -> np.ndarray:
    return np.unique(np.concatenate(([0, n], rng.integers(0, n + 1, k))))


@pytest.mark.parametrize("decimals", [None, 2, 3])
def test_auc_equals_sklearn(decimals: int | None) -> None:
    y, s = stream(50_000, seed=1, decimals=decimals)
    m = ProgressiveAUC(buffer_events=1000)
    feed(m, y, s, [*np.arange(0, 50_001, 4096).tolist(), 50_000])
    assert m.get() == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc_from_arrays(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m.n_distinct == np.unique(s).size
    assert (m.n_pos, m.n_neg) == (int(y.sum()), int((y == 0).sum()))
    assert m.nbytes == 20 * m.n_distinct  # buffer merged by get()


def test_auc_is_exact_rational() -> None:
    rng = np.random.default_rng(5)
    s = np.round(rng.random(400), 1).astype(np.float32)
    y = rng.integers(0, 2, 400)
    P, N = s[y == 1], s[y == 0]
    twice = int((P[:, None] > N[None, :]).sum()) * 2 + int((P[:, None] == N[None, :]).sum())
    assert auc_from_arrays(y, s) == float(Fraction(twice, 2 * P.size * N.size))


def test_drifting_stream_progressive_values() -> None:
    y, s = stream(40_000, seed=2, drift=True)
    m = ProgressiveAUC(buffer_events=3000)
    for end in range(4000, 40_001, 4000):
        m.update(y[end - 4000 : end], s[end - 4000 : end])
        assert m.get() == pytest.approx(roc_auc_score(y[:end], s[:end]), abs=1e-12)
    assert m.get() < 0.6  # the second half undid the first


def test_one_class_is_undefined_then_defined() -> None:
    m = ProgressiveAUC()
    assert m.get() is None
    m.update(np.ones(100), np.linspace(0, 1, 100, dtype=np.float32))
    assert m.get() is None and auc_from_arrays(np.ones(3), np.zeros(3)) is None
    m.update(np.zeros(1), np.array([0.5], np.float32))
    assert m.get() == pytest.approx(roc_auc_score(np.r_[np.ones(100), 0], np.r_[np.linspace(0, 1, 100), 0.5]))


@pytest.mark.parametrize("decimals", [None, 2])
def test_batch_split_invariance(decimals: int | None) -> None:
    y, s = stream(20_000, seed=3, decimals=decimals)
    rng = np.random.default_rng(0)
    values = set()
    for k, buf in [(0, 1 << 16), (1, 1), (7, 100), (500, 1), (3000, 4096)]:
        m = ProgressiveAUC(buffer_events=buf)
        cuts = random_cuts(y.size, rng, k)
        for a, b in itertools.pairwise(cuts):
            m.update(y[a:b], s[a:b])
            if b % 3 == 0:
                m.get()  # interleaved reads must not change the result
        m.update(y[:0], s[:0])  # empty batch
        values.add(m.get())
    assert len(values) == 1  # bit-identical whatever the batching


def test_auc_inputs() -> None:
    # -0.0 ties with +0.0; float64 scores are compared as float32; bool and int labels work
    assert auc_from_arrays(np.array([True, False]), np.array([-0.0, 0.0])) == 0.5
    assert auc_from_arrays(np.array([1, 0]), np.array([0.1, 0.1 + 1e-12])) == 0.5
    assert auc_from_arrays(np.array([1, 0, 1]), np.array([1.0, 0.0, 0.5], np.float32)) == 1.0
    with pytest.raises(ValueError, match="0 or 1"):
        ProgressiveAUC().update(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        ProgressiveAUC().update(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="3 values"):
        ProgressiveAUC().update(np.array([0, 1, 1]), np.array([0.1, 0.2]))


def test_logloss_equals_sklearn() -> None:
    y, s = stream(30_000, seed=4)
    s = np.clip(s, 1e-4, 1 - 1e-4)  # sklearn clips at the dtype's eps, we at 1e-7: stay clear of both
    m = LogLoss()
    feed(m, y, s, random_cuts(y.size, np.random.default_rng(1), 20))
    assert m.get() == pytest.approx(sk_log_loss(y, s.astype(np.float64)), abs=1e-9)


def test_logloss_clips_at_1e7() -> None:
    m = LogLoss()
    assert m.get() is None
    m.update(np.array([1, 0]), np.array([0.0, 1.0]))
    assert m.get() == pytest.approx(-np.log(1e-7), rel=1e-9)  # 1 - (1 - 1e-7) rounds a little


def test_mean_score_and_ctr() -> None:
    y, s = stream(10_000, seed=6)
    ms, ctr = MeanScore(), ObservedCTR()
    assert ms.get() is None and ctr.get() is None
    for m in (ms, ctr):
        feed(m, y, s, np.arange(0, 10_001, 1000))
    assert ms.get() == pytest.approx(s.astype(np.float64).mean(), abs=1e-12)
    assert ctr.get() == y.mean(dtype=np.float64)
    assert repr(ProgressiveAUC()) == "ProgressiveAUC(auc=undefined)"
    assert repr(ctr) == f"ObservedCTR(ctr={ctr.get():.6f})"


def exact_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """The AUC of the whole stream at once: its pair count in Python integers over the counts per distinct
    float32 score, divided once (a correctly rounded quotient)."""
    keys, inv = np.unique(np.asarray(s, np.float32) + np.float32(0.0), return_inverse=True)
    pos = np.bincount(inv, weights=y == 1, minlength=keys.size).astype(np.int64)
    neg = np.bincount(inv, minlength=keys.size) - pos
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if not (n_pos and n_neg):
        return None
    twice_wins = sum(p * (2 * b + n) for p, b, n in zip(pos.tolist(), (np.cumsum(neg) - neg).tolist(), neg.tolist(),
                                                        strict=True))
    return twice_wins / (2 * n_pos * n_neg)


@pytest.mark.parametrize("seed", range(6))
def test_progressive_values_are_the_exact_ones(seed: int) -> None:
    # random streams with ties, random batchings and buffers, a get() after random batches, a pickle
    # round trip on the way (the sink's snapshots): every value is the exact one, to the bit
    rng = np.random.default_rng(seed)
    for _ in range(20):
        n = int(rng.integers(1, 3000))
        y, s = stream(n, seed=int(rng.integers(1 << 30)), decimals=[None, 1, 2, 3][int(rng.integers(4))])
        y = y if rng.random() < 0.9 else np.ones_like(y)  # sometimes one class throughout
        m = ProgressiveAUC(buffer_events=int(rng.choice([1, 50, 1000, 1 << 16])))
        for a, b in itertools.pairwise(random_cuts(n, rng, int(rng.integers(0, 40)))):
            m.update(y[a:b], s[a:b])
            if rng.random() < 0.5:
                assert m.get() == exact_auc(y[:b], s[:b])
            if rng.random() < 0.1:
                m = pickle.loads(pickle.dumps(m))
        assert m.get() == exact_auc(y, s)
        assert (m.n_pos, m.n_neg) == (int(y.sum()), int((y == 0).sum()))


@pytest.mark.parametrize("seed", range(4))
def test_auc_from_counts_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, s = stream(int(rng.integers(2, 20_000)), seed=seed, decimals=[None, 2][seed % 2])
    keys, inv = np.unique(s, return_inverse=True)
    pos = np.bincount(inv, weights=y == 1, minlength=keys.size).astype(np.int64)
    assert auc_from_counts(np.bincount(inv, minlength=keys.size) - pos, pos) == exact_auc(y, s)
