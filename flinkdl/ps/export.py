"""``flinkdl ps export``: a committed version as a TensorFlow SavedModel that scores raw events.

Its signatures are those of :class:`flinkdl.publish.scorer.Scorer`: ``serving_default`` takes one 1-D tensor per raw
column (int64 or string ids, float64 numerics) and hashes in the graph; ``score_features`` takes
the featurizer's ``ids`` and ``dense``. ``flinkdl publish`` (:mod:`flinkdl.publish`) writes the
same module continuously, behind a quality gate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model
from flinkdl.ps.checkpoint import CheckpointStore
from flinkdl.ps.commits import is_cluster, restore_cluster
from flinkdl.ps.errors import PsError
from flinkdl.ps.refresh import fill_model
from flinkdl.publish.graph import murmur3_int64, murmur3_words
from flinkdl.publish.scorer import Scorer

tf_murmur3_words = murmur3_words  # the names this module had before flinkdl.publish.graph
tf_murmur3_int64 = murmur3_int64


def load_version(cfg: JobConfig, checkpoint_uri: str, version: int | None) -> tuple[ModelBase, int]:
    """The job's model with committed ``version`` (default: the newest recorded cut of writer lanes,
    else the latest version) loaded into its variables."""
    from flinkdl.ps.lane_service import newest_cut_state

    state = newest_cut_state(checkpoint_uri) if version is None else None  # exactly-once at parallelism > 1
    # a sharded PS (several processes) keeps one directory per shard and a commit log
    if state is None:
        state = restore_cluster(checkpoint_uri, version) if is_cluster(checkpoint_uri) else \
            CheckpointStore(checkpoint_uri).restore(version)
    if state is None:
        raise PsError(f"no committed version in {checkpoint_uri}")
    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    rows: dict[str, list] = {}
    for (_, table), part in state.rows.items():
        rows.setdefault(table, []).append(part)
    merged = {t: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
              for t, parts in rows.items()}
    fill_model(model, cfg.ps.table_prefix, merged, state.dense, state.version)
    return model, state.version


def export_saved_model(cfg: JobConfig, checkpoint_uri: str, version: int | None, out_dir: str | Path) -> str:
    """Write the SavedModel of ``version`` to ``out_dir``; returns the directory."""
    model, v = load_version(cfg, checkpoint_uri, version)
    module = Scorer(cfg.features, model)
    module.version = tf.Variable(v, dtype=tf.int64, trainable=False, name="ps_version")
    tf.saved_model.save(module, str(out_dir), signatures=module.signatures())
    return str(out_dir)
