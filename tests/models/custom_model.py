"""A custom model for the registry test: one file, found by ``"custom_model:TinyModel"``."""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase


class TinyModel(ModelBase):
    """Per-bucket weight of the first id field + bias."""

    name = "tiny"

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        self.w = self.table("tiny_w", 1, stddev=0.0)
        self.b = self.dense_var("tiny_b", (1,))

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        return tf.nn.embedding_lookup(self.w, ids[:, 0])[:, 0] + self.b[0]
