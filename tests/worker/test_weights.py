"""Per-row loss weights through the worker: a weighted layout's trailing column, the feature stream, the step."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.channel import pack
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model
from flinkdl.worker.hooks import Batch
from flinkdl.worker.process import run_step
from tests.worker.feed_server import EOS, read_stream

PLAIN = FeatureLayout(n_ids=2, n_dense=1, buckets=64)
WEIGHTED = FeatureLayout(n_ids=2, n_dense=1, buckets=64, weighted=True)


def _rows(layout: FeatureLayout, n: int = 4) -> pa.RecordBatch:
    at = np.arange(n, dtype=np.int64)
    cols = [at, np.array([1, 0, 1, 0][:n], np.float32), at % 7, at % 5 + 10, np.linspace(0, 1, n, dtype=np.float32)]
    if layout.weighted:
        cols.append(np.array([0.5, 1.0, 1.5, 2.0][:n], np.float32))
    return pa.record_batch(cols, schema=layout.schema())


def _serve_once(layout: FeatureLayout) -> list[tuple]:
    """The worker's feature stream over a unix socket that sends one feature batch, then the end of the stream."""
    return read_stream(layout, pack(_rows(layout)) + EOS, lambda stream: [
        tuple(c.numpy() for c in (b.event_id, b.label, b.ids, b.dense, b.weight) if c is not None) for b in stream])


def test_only_a_weighted_layout_has_the_weight_column():
    assert "weight" not in PLAIN.schema().names
    assert WEIGHTED.schema().names[-1] == "weight" and WEIGHTED.schema().names[:-1] == PLAIN.schema().names


def test_the_stream_yields_the_weights_of_a_weighted_layout_only():
    (plain,), (weighted,) = _serve_once(PLAIN), _serve_once(WEIGHTED)
    assert len(plain) == 4 and len(weighted) == 5
    for a, b in zip(plain, weighted[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain[2].shape == (4, 2) and plain[3].shape == (4, 1)
    np.testing.assert_array_equal(weighted[4], [0.5, 1.0, 1.5, 2.0])


def test_run_step_passes_the_batch_weights_to_the_model():
    cfg = ModelConfig(name="lr", micro_batch_rows=None)
    ids, dense = tf.constant([[1, 2], [3, 4], [1, 4]], tf.int64), tf.constant([[0.1], [0.2], [0.3]])
    y, w = tf.constant([1.0, 0.0, 1.0]), tf.constant([2.0, 0.5, 1.0])
    a, b, c = build_model(PLAIN, cfg), build_model(PLAIN, cfg), build_model(PLAIN, cfg)
    run_step(a, [], Batch(tf.range(3, dtype=tf.int64), y, ids, dense, w))
    b.predict_then_train(ids, dense, y, weights=w.numpy())
    run_step(c, [], Batch(tf.range(3, dtype=tf.int64), y, ids, dense))  # no weights: the unweighted step
    for name, var in a.variables().items():
        np.testing.assert_array_equal(var.numpy(), b.variables()[name].numpy())
    assert not np.array_equal(a.variables()["lr_w"].numpy(), c.variables()["lr_w"].numpy())
