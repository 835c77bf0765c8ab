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


def test_export_of_an_unknown_version_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    from flinkdl.ps.checkpoint import CheckpointStore
    from flinkdl.ps.service import ParameterService

    from .conftest import ROOT

    svc = ParameterService(1, CheckpointStore(str(tmp_path / "ck")))
    svc.create_table("emb", 16)
    svc.commit()
    proc = subprocess.run([sys.executable, "-m", "flinkdl.cli", "ps", "export", "7", str(tmp_path / "out"),
                           "--config", "jobs/click_stream.yaml", "--checkpoint-dir", str(tmp_path / "ck")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "unknown version 7 (have [1])" in proc.stderr
