"""ES-DFM's importance weights (closed-form cases) and the online training of its elapsed-time model."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.config.esdfm import EsDfmConfig
from flinkdl.exchange.schema import Bag, FeatureLayout
from flinkdl.feedback.esdfm import ElapsedTimeModel, elapsed_bucket, esdfm_weights


def test_without_delay_every_weight_is_one():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(esdfm_weights(y, np.zeros(4), np.ones(4)), np.ones(4, np.float32))


def test_training_on_arrival_gives_ktenas_fake_negative_weights():
    """e = 0: every click is delayed (p_dp = p), an observed negative is real with 1 - p."""
    p = np.array([0.1, 0.3, 0.6])
    pos = esdfm_weights(np.ones(3), p, (1 - p) / (1 - p + p))
    neg = esdfm_weights(np.zeros(3), p, (1 - p) / (1 - p + p))
    np.testing.assert_allclose(pos, 1 + p, rtol=1e-6)
    np.testing.assert_allclose(neg, (1 - p) * (1 + p), rtol=1e-6)


@pytest.mark.parametrize(("p", "p_dp"), [(0.3, 0.0), (0.3, 0.1), (0.3, 0.3), (0.05, 0.04), (0.8, 0.5)])
def test_the_weighted_observed_loss_is_minimal_at_the_true_probability(p: float, p_dp: float):
    """Under the observed distribution q (fake negatives and duplicates), the expected weighted
    logloss has zero gradient (in the logit) exactly at f = p."""
    q1, q0 = p / (1 + p_dp), (1 - p + p_dp) / (1 + p_dp)
    p_rn = (1 - p) / (1 - p + p_dp)
    w_pos, w_neg = (float(w) for w in esdfm_weights(np.array([1.0, 0.0]), np.full(2, p_dp), np.full(2, p_rn)))
    f = np.linspace(0.01, 0.99, 981)
    grad = q1 * w_pos * (f - 1) + q0 * w_neg * f  # d/dlogit of the expected weighted logloss
    assert abs(f[np.argmin(np.abs(grad))] - p) < 1e-3
    unweighted = q1 * (f - 1) + q0 * f
    if p_dp > 0:  # plain training on q learns q(1|x) = p / (1 + p_dp) instead
        assert abs(f[np.argmin(np.abs(unweighted))] - p / (1 + p_dp)) < 1e-3


def test_elapsed_buckets_are_log2_seconds():
    ms = np.array([-5, 0, 999, 1000, 1999, 2000, 3999, 4000, 10**12])
    assert elapsed_bucket(ms, 6).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 5]


LAYOUT = FeatureLayout(n_ids=2, n_dense=1, buckets=1 << 10)


def _rows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two ids (the first decides), elapsed 0.5 s or 100 s; p(delayed) = .8/.1 for id 1 at short/long
    elapsed time, .2/.05 for id 2."""
    first = rng.integers(1, 3, n)
    ids = np.stack([first, rng.integers(100, 110, n)], axis=1).astype(np.int64)
    long_e = rng.random(n) < 0.5
    elapsed = np.where(long_e, 100_000, 500)
    p = np.where(first == 1, np.where(long_e, 0.1, 0.8), np.where(long_e, 0.05, 0.2))
    return ids, np.zeros((n, 1), np.float32), elapsed, (rng.random(n) < p).astype(np.float32)


def test_the_elapsed_time_model_learns_per_id_and_elapsed_bucket():
    m, rng = ElapsedTimeModel(LAYOUT, EsDfmConfig(learning_rate=0.1, warmup_labels=0)), np.random.default_rng(3)
    before = m.predict(*_rows(4, rng)[:3])
    np.testing.assert_allclose(before[0], 0.5)  # untrained: sigmoid(0)
    for _ in range(300):
        ids, dense, elapsed, y = _rows(256, rng)
        m.train_dp(ids, dense, elapsed, y)
    probe = np.array([[1, 105], [1, 105], [2, 105], [2, 105]], np.int64)
    p_dp, p_rn = m.predict(probe, np.zeros((4, 1), np.float32), np.array([500, 100_000, 500, 100_000]))
    np.testing.assert_allclose(p_dp, [0.8, 0.1, 0.2, 0.05], atol=0.08)
    np.testing.assert_allclose(p_rn, 0.5)  # its own model: not trained by train_dp
    assert m.dp.version == 300 and m.rn.version == 0


def test_the_elapsed_bucket_goes_before_the_bags():
    layout = FeatureLayout(n_ids=3, n_dense=0, buckets=1 << 8, bags=(Bag(2, "sum"),))
    m = ElapsedTimeModel(layout, EsDfmConfig(elapsed_buckets=4, warmup_labels=0))
    aux = m.aux_ids(np.array([[7, 8, 9]], np.int64), np.array([3000]))
    assert aux.shape == (1, 4) and aux[0, 0] == 7 and aux[0, 2:].tolist() == [8, 9]
    assert aux[0, 1] == m._bucket_ids[2] and m.layout.n_single == 2 and m.layout.bags == layout.bags
    m.train_rn(np.array([[7, 8, 9]]), np.zeros((1, 0), np.float32), np.array([3000]), np.array([1.0]))
    assert m.rn.version == 1


def test_until_warm_the_weights_are_one():
    m, rng = ElapsedTimeModel(LAYOUT, EsDfmConfig(warmup_labels=5)), np.random.default_rng(4)
    ids, dense, elapsed, _ = _rows(8, rng)
    m.train_dp(ids, dense, elapsed, np.r_[np.ones(5), np.zeros(3)])  # 3 of label 0: not yet
    m.train_rn(ids, dense, elapsed, np.r_[np.ones(5), np.zeros(3)])
    p_dp, p_rn = m.predict(ids, dense, elapsed)
    assert not m.warm and p_dp.tolist() == [0.0] * 8 and p_rn.tolist() == [1.0] * 8
    m.train_dp(ids, dense, elapsed, np.zeros(8))
    m.train_rn(ids, dense, elapsed, np.zeros(8))
    assert m.warm and m.seen.tolist() == [[11, 5], [11, 5]]
    assert not np.allclose(m.predict(ids, dense, elapsed)[0], 0.0)
