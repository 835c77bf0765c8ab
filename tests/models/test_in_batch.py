"""Fresh in-batch scores (``model.fresh_scores``)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model
from flinkdl.models.in_batch import earlier_steps

LAYOUT = FeatureLayout(n_ids=2, n_dense=1, buckets=1 << 10)


def cfg(name: str, **kw) -> ModelConfig:
    return ModelConfig(name=name, embedding_dim=4, hidden=[8], **kw)


def burst(n: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One user (id 1) rating n distinct items, all liked."""
    ids = np.stack([np.ones(n), 100 + np.arange(n)], axis=1).astype(np.int64)
    return ids, np.zeros((n, 1), np.float32), np.ones(n, np.float32)


def test_earlier_steps_is_the_exclusive_adagrad_sum_per_id() -> None:
    g = tf.constant([[1.0], [2.0], [4.0], [3.0]])
    ids = tf.constant([7, 5, 7, 7], tf.int64)
    acc = tf.fill([4, 1], 0.1)
    got = earlier_steps(g, ids, acc, 0.5).numpy()[:, 0]
    want = [0.0, 0.0, -0.5 * 1 / np.sqrt(0.1 + 1), -0.5 * 5 / np.sqrt(0.1 + 1 + 16)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["lr", "fm", "deepfm"])
def test_fresh_scores_use_earlier_rows_and_leave_the_update_alone(name: str) -> None:
    ids, dense, y = burst()
    plain, fresh = build_model(LAYOUT, cfg(name, fresh_scores=False)), build_model(LAYOUT, cfg(name, fresh_scores=True))
    s0, s1 = plain.predict_then_train(ids, dense, y).numpy(), fresh.predict_then_train(ids, dense, y).numpy()
    assert s1[0] == pytest.approx(s0[0], abs=1e-6)  # the first row has nothing earlier
    assert s1[-1] > s1[1] > s1[0] and s1[-1] > s0[-1] + 0.02  # later rows of the burst learnt from earlier ones
    for k, v in plain.variables().items():  # the step itself is the usual one
        np.testing.assert_allclose(fresh.variables()[k].numpy(), v.numpy(), atol=1e-6)

