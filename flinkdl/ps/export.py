"""``flinkdl ps export``: a committed version as a TensorFlow SavedModel that scores raw events.

Signatures:

- ``serving_default`` (when every categorical field is ``type: int``): one 1-D tensor per raw
  column: int64 for each categorical field, float64 for each numeric field (NaN = missing). The
  graph hashes (MurmurHash3 x86_32 in ``uint32`` ops, bit-equal to :mod:`flinkdl.features.hashing`),
  crosses, bucketizes and transforms exactly like the featurizer, then returns ``score``.
- ``score_features``: the featurizer's output (``ids`` int64 ``[B, F]``, ``dense`` float32
  ``[B, D]``) → ``score``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.hashing import field_seed
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model
from flinkdl.ps.checkpoint import CheckpointStore
from flinkdl.ps.commits import is_cluster, restore_cluster
from flinkdl.ps.errors import PsError
from flinkdl.ps.refresh import fill_model

_C1, _C2, _N, _F1, _F2 = 0xCC9E2D51, 0x1B873593, 0xE6546B64, 0x85EBCA6B, 0xC2B2AE35


def _u32(x: int) -> tf.Tensor:
    return tf.constant(x, tf.uint32)


def _rotl(x: tf.Tensor, r: int) -> tf.Tensor:
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, _u32(r)), tf.bitwise.right_shift(x, _u32(32 - r)))


def tf_murmur3_words(lo: tf.Tensor, hi: tf.Tensor, seed: int) -> tf.Tensor:
    """MurmurHash3_x86_32 of the 8 bytes ``lo | hi << 32`` (two uint32 words) → uint32."""
    h = tf.fill(tf.shape(lo), _u32(seed & 0xFFFFFFFF))
    for k in (lo, hi):
        k = _rotl(k * _u32(_C1), 15) * _u32(_C2)
        h = _rotl(tf.bitwise.bitwise_xor(h, k), 13) * _u32(5) + _u32(_N)
    h = tf.bitwise.bitwise_xor(h, _u32(8))
    for shift, mult in ((16, _F1), (13, _F2), (16, None)):
        h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, _u32(shift)))
        if mult is not None:
            h = h * _u32(mult)
    return h


def tf_murmur3_int64(v: tf.Tensor, seed: int) -> tf.Tensor:
    """MurmurHash3_x86_32 of each int64's 8 little-endian bytes → uint32."""
    mask = tf.constant(0xFFFFFFFF, tf.int64)
    lo = tf.cast(tf.bitwise.bitwise_and(v, mask), tf.uint32)
    hi = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(v, tf.constant(32, tf.int64)), mask), tf.uint32)
    return tf_murmur3_words(lo, hi, seed)


class RawEventScorer(tf.Module):
    """Holds the model's variables; scores featurized or raw events."""

    def __init__(self, cfg: JobConfig, model: ModelBase) -> None:
        super().__init__()
        self.cfg, self.model = cfg, model
        self.model_variables = list(model.variables().values())
        layout = model.layout
        self.score_features = tf.function(self._score_features, input_signature=[
            tf.TensorSpec([None, layout.n_ids], tf.int64, name="ids"),
            tf.TensorSpec([None, layout.n_dense], tf.float32, name="dense")])
        f = cfg.features
        self.raw_ok = all(c.type == "int" for c in f.categorical)
        if self.raw_ok:
            specs = [tf.TensorSpec([None], tf.int64, name=c.name) for c in f.categorical]
            specs += [tf.TensorSpec([None], tf.float64, name=n.name) for n in f.numeric]
            self.score_raw = tf.function(self._score_raw, input_signature=specs)

    def _score_features(self, ids: tf.Tensor, dense: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"score": self.model.predict(ids, dense)}

    def _score_raw(self, *cols: tf.Tensor) -> dict[str, tf.Tensor]:
        f = self.cfg.features
        names = [c.name for c in f.categorical]
        hashes = [tf_murmur3_int64(cols[i], field_seed(f.hash_seed, n)) for i, n in enumerate(names)]
        crossed = [tf_murmur3_words(hashes[names.index(a)], hashes[names.index(b)],
                                    field_seed(f.hash_seed, f"{a}#{b}")) for a, b in f.crosses]
        mask = _u32((1 << f.hash_bits) - 1)
        ids = tf.stack([tf.cast(tf.bitwise.bitwise_and(h, mask), tf.int64) for h in hashes + crossed], axis=1)
        dense = []
        for k, n in enumerate(f.numeric):
            x = cols[len(names) + k]
            missing = tf.math.is_nan(x)
            x = tf.where(missing, tf.zeros_like(x), x)
            if n.transform == "log1p":
                x = tf.sign(x) * tf.math.log1p(tf.abs(x))
            dense += [tf.cast(x, tf.float32), tf.cast(missing, tf.float32)]
        batch = tf.shape(cols[0])[0]
        dense_t = tf.stack(dense, axis=1) if dense else tf.zeros([batch, 0])
        return {"score": self.model.predict(ids, dense_t)}


def load_version(cfg: JobConfig, checkpoint_uri: str, version: int | None) -> tuple[ModelBase, int]:
    """The job's model with committed ``version`` (default latest) loaded into its variables."""
    # a sharded PS (several processes) keeps one directory per shard and a commit log
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
    module = RawEventScorer(cfg, model)
    module.version = tf.Variable(v, dtype=tf.int64, trainable=False, name="ps_version")
    sigs = {"score_features": module.score_features}
    sigs["serving_default"] = module.score_raw if module.raw_ok else module.score_features
    tf.saved_model.save(module, str(out_dir), signatures=sigs)
    return str(out_dir)
