"""Multi-valued fields in every model: a bag of one id is that id as a single field; pooling; padding."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import PAD, Bag, FeatureLayout
from flinkdl.models import build_model

MODELS = ["lr", "fm", "deepfm"]
SINGLE = FeatureLayout(n_ids=3, n_dense=2, buckets=64)
BAGGED = FeatureLayout(n_ids=2 + 4, n_dense=2, buckets=64, bags=(Bag(4, "mean"),))


def cfg(name: str, **kw) -> ModelConfig:
    return ModelConfig(name=name, embedding_dim=4, hidden=[8], field_weights=name != "lr", **kw)


def _data(n: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 64, (n, 3), dtype=np.int64), rng.normal(size=(n, 2)).astype(np.float32),
            (rng.random(n) < 0.5).astype(np.float32))


@pytest.mark.parametrize("name", MODELS)
def test_a_bag_of_one_id_is_that_id_as_a_single_field(name: str) -> None:
    ids, dense, labels = _data()
    bagged = np.concatenate([ids, np.full((len(ids), 3), PAD, np.int64)], axis=1)  # 3rd field: a bag of one
    a, b = build_model(SINGLE, cfg(name)), build_model(BAGGED, cfg(name))
    assert BAGGED.n_fields == SINGLE.n_fields == 3
    for _ in range(3):  # same scores and the same learning, step after step
        sa = a.predict_then_train(tf.constant(ids), tf.constant(dense), tf.constant(labels)).numpy()
        sb = b.predict_then_train(tf.constant(bagged), tf.constant(dense), tf.constant(labels)).numpy()
        np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_lr_pools_the_weights_of_a_bag(pooling: str) -> None:
    layout = FeatureLayout(n_ids=3, n_dense=0, buckets=16, bags=(Bag(3, pooling),))
    m = build_model(layout, ModelConfig(name="lr"))
    m.w.assign(tf.reshape(tf.range(16, dtype=tf.float32), [16, 1]))
    ids = tf.constant([[2, 4, PAD], [3, PAD, PAD], [1, 2, 3]], tf.int64)
    got = m.logits(ids, tf.zeros([3, 0])).numpy()
    want = [3.0, 3.0, 2.0] if pooling == "mean" else [6.0, 3.0, 6.0]
    np.testing.assert_allclose(got, want)


def test_padding_reads_and_updates_no_row() -> None:
    layout = FeatureLayout(n_ids=4, n_dense=1, buckets=16, bags=(Bag(3, "sum"),))
    m = build_model(layout, cfg("fm"))
    before = m.emb.numpy().copy()
    ids = tf.constant([[5, 6, PAD, PAD], [5, 7, 8, PAD]], tf.int64)
    m.predict_then_train(ids, tf.ones([2, 1]), tf.constant([1.0, 0.0]))
    changed = np.flatnonzero(np.any(m.emb.numpy() != before, axis=1)).tolist()
    assert changed == [5, 6, 7, 8]  # row 15 (what -1 would wrap to) and row 0 untouched
