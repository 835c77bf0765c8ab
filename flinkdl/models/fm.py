"""Factorization machine: LR + pairwise interactions of the field embeddings.

The dense features enter as one extra field, their linear projection ``dense @ V_d`` to ``k``.

With ``model.field_weights`` the pairwise term is field-weighted (FwFM, Pan et al., WWW 2018):
``Σ_{i<j} r_ij <v_i, v_j>`` with one dense weight per pair of fields, starting at 1 (a plain
FM). A plain FM makes every field's embedding serve every pair at once; the weights let a few
strongly interacting pairs dominate and mute the noise of the hundreds of others. On the drift
stream (three hidden low-rank crosses among 26 fields) DeepFM's progressive AUC went from
0.7587 to 0.7776 at batch 512 (docs/BENCHMARKS.md), for (F+1)^2 extra dense weights and a
``[B, F+1, F+1]`` batch of dot products per step.
"""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.bags import field_rows
from flinkdl.models.lr import LogisticRegression
from flinkdl.models.registry import register


@register("fm")
class FactorizationMachine(LogisticRegression):
    """``logit = LR + Σ_{i<j} <v_i, v_j>`` over the id fields and the projected dense field."""

    #: embedding rows and their interactions: steps big enough for TensorFlow's own thread pool
    intra_op_threads = 0

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        k = cfg.embedding_dim
        self.emb = self.table("emb", k, stddev=cfg.embedding_init_std / cfg.embedding_lr_scale)
        self.emb_dense = self.dense_var("emb_dense", (self.n_dense, k))
        if cfg.field_weights:
            n = layout.n_fields + 1  # the id fields and the dense field
            self.field_w = self.dense_var("fm_field_weights", (n, n), init="ones")
            self._upper = tf.constant([[float(i < j) for j in range(n)] for i in range(n)])  # pairs i < j

    def embed(self, ids: tf.Tensor) -> tf.Tensor:
        """Field embeddings ``[B, n_fields, k]`` (a multi-valued field's: its ids' pooled)."""
        rows = field_rows(self.emb, ids, self.layout)
        return rows if self.cfg.embedding_lr_scale == 1.0 else rows * self.cfg.embedding_lr_scale

    def fm_term(self, emb: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """Second-order term ``[B]`` over ``emb`` ``[B, F, k]`` plus the dense field."""
        fields = tf.concat([emb, tf.matmul(dense, self.emb_dense)[:, None, :]], axis=1)
        if self.cfg.field_weights:  # Σ_{i<j} r_ij <v_i, v_j>; entries off the upper triangle get no gradient
            dots = tf.matmul(fields, fields, transpose_b=True)  # [B, F+1, F+1]
            return tf.reduce_sum(dots * (self.field_w * self._upper), axis=[1, 2])
        s = tf.reduce_sum(fields, axis=1)
        return 0.5 * tf.reduce_sum(tf.square(s) - tf.reduce_sum(tf.square(fields), axis=1), axis=1)

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        return self.linear(ids, dense) + self.fm_term(self.embed(ids), dense)
