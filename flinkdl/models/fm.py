"""Factorization machine: LR + pairwise interactions of the field embeddings.

The dense features enter as one extra field, their linear projection ``dense @ V_d`` to ``k``.
"""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.features.layout import FeatureLayout
from flinkdl.models.base import lookup
from flinkdl.models.lr import LogisticRegression
from flinkdl.models.registry import register


@register("fm")
class FactorizationMachine(LogisticRegression):
    """``logit = LR + Σ_{i<j} <v_i, v_j>`` over the id fields and the projected dense field."""

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        k = cfg.embedding_dim
        self.emb = self.table("emb", k, stddev=0.01)
        self.emb_dense = self.dense_var("emb_dense", (layout.n_dense, k))

    def embed(self, ids: tf.Tensor) -> tf.Tensor:
        """Field embeddings ``[B, n_ids, k]``."""
        return lookup(self.emb, ids)

    def fm_term(self, emb: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """Second-order term ``[B]`` over ``emb`` ``[B, F, k]`` plus the dense field."""
        fields = tf.concat([emb, tf.matmul(dense, self.emb_dense)[:, None, :]], axis=1)
        s = tf.reduce_sum(fields, axis=1)
        return 0.5 * tf.reduce_sum(tf.square(s) - tf.reduce_sum(tf.square(fields), axis=1), axis=1)

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        return self.linear(ids, dense) + self.fm_term(self.embed(ids), dense)
