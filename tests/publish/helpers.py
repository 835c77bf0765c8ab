"""A small job (generator events, a string field and a cross) and its featurized batches, for the publish tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from flinkdl.config.schema import CRITEO_LIKE_FEATURES, JobConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.transform import Featurizer
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model
from flinkdl.sources.generator import ClickStream
from flinkdl.worker.hooks.base import Batch

STRING_FIELDS = ("C2", "C3")


def small_config(model: str = "deepfm", **publish: object) -> JobConfig:
    """Generator columns: C1, C4 int; C2, C3 as strings; crosses; three numerics (one log1p, one identity)."""
    return JobConfig.model_validate({
        "features": {"categorical": [{"name": "C1", "type": "int"}, {"name": "C2", "type": "string"},
                                     {"name": "C3", "type": "string"}, {"name": "C4", "type": "int"}],
                     "numeric": ["I1", "I2", {"name": "I3", "transform": "identity"}],
                     "crosses": [["C1", "C2"], ["C3", "C4"]], "hash_bits": 12, "hash_seed": 5},
        "model": {"name": model, "embedding_dim": 4, "hidden": [8],
                  "optimizer": {"name": "adagrad", "learning_rate": 0.1}},
        "publish": publish})


def click_config(model: str = "deepfm", **publish: object) -> JobConfig:
    """The built-in stream's features (26 int ids, 13 numerics) with small tables and a small ``model``."""
    return JobConfig.model_validate({
        "features": {**CRITEO_LIKE_FEATURES, "hash_bits": 14},
        "model": {"name": model, "embedding_dim": 4, "hidden": [16],
                  "optimizer": {"name": "adagrad", "learning_rate": 0.1}},
        "publish": publish})


def raw_batches(n: int, size: int = 512, seed: int = 3, strings: bool = True) -> list[pa.RecordBatch]:
    """Generator batches; with ``strings`` the string fields cast to text, some of them blank (missing)."""
    stream, out = ClickStream(seed=seed), []
    for i in range(n):
        b = stream.batch(i, size)
        if not strings:
            out.append(b)
            continue
        cols = dict(zip(b.schema.names, b.columns, strict=True))
        for name in STRING_FIELDS:
            text = pc.cast(cols[name], pa.string()).to_numpy(zero_copy_only=False).astype(object)
            text[::7] = ""  # missing
            text[1::11] = "héllo wörld, longer than a block"
            cols[name] = pa.array(text, pa.string())
        out.append(pa.record_batch(list(cols.values()), names=list(cols)))
    return out


def featurized(cfg: JobConfig, raw: pa.RecordBatch) -> Batch:
    """The worker's :class:`Batch` of ``raw`` (the job's featurizer, numpy mmh3)."""
    fb, dead = Featurizer(cfg.features).transform(raw)
    assert not dead
    layout = FeatureLayout.from_config(cfg.features)
    cols = [c.to_numpy(zero_copy_only=False) for c in fb.columns]
    ids = np.stack(cols[2:2 + layout.n_ids], axis=1).astype(np.int64)
    dense = np.stack(cols[2 + layout.n_ids:], axis=1).astype(np.float32)
    return Batch(tf.constant(cols[0]), tf.constant(cols[1].astype(np.float32)), tf.constant(ids), tf.constant(dense))


def raw_inputs(cfg: JobConfig, raw: pa.RecordBatch) -> dict[str, np.ndarray]:
    """The raw columns as the ``serving_default`` signature takes them (strings: "" = missing)."""
    out: dict[str, np.ndarray] = {}
    for c in cfg.features.categorical:
        col = raw.column(c.name)
        out[c.name] = (col.to_numpy(zero_copy_only=False).astype(np.int64) if c.type == "int"
                       else np.array(col.fill_null("").to_pylist(), dtype=object))
    for num in cfg.features.numeric:
        out[num.name] = raw.column(num.name).to_numpy(zero_copy_only=False).astype(np.float64)  # null -> NaN
    return out


def model_of(cfg: JobConfig) -> ModelBase:
    return build_model(FeatureLayout.from_config(cfg.features), cfg.model)
