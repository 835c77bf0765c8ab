"""In-graph hashing of the SavedModel export equals the featurizer's, bit for bit."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from flinkdl.features.hashing import cross, murmur3_32_int64
from flinkdl.ps.export import tf_murmur3_int64, tf_murmur3_words


def test_tf_murmur3_matches_numpy():
    rng = np.random.default_rng(0)
    v = np.concatenate([[0, -1, 1, 2**63 - 1, -(2**63)], rng.integers(-(2**63), 2**63 - 1, 1000)]).astype(np.int64)
    for seed in (0, 42, 0xFFFFFFFF):
        assert np.array_equal(tf_murmur3_int64(tf.constant(v), seed).numpy(), murmur3_32_int64(v, seed))
    a, b = murmur3_32_int64(v, 1), murmur3_32_int64(v, 2)
    assert np.array_equal(tf_murmur3_words(tf.constant(a), tf.constant(b), 7).numpy(), cross(a, b, 7))
