"""Hashed logistic regression: one weight per bucket, summed over id fields, + linear dense + bias."""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.bags import field_rows
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import register


@register("lr")
class LogisticRegression(ModelBase):
    """``logit = Σ_f w[id_f] + dense·u + b`` (a multi-valued field: its ids' weights pooled).

    Works well with adagrad (lr 0.05–0.1) or ftrl."""

    #: its step is a few gathers and one sparse apply: a second thread adds CPU without shortening it
    intra_op_threads = 1

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        self.w = self.table("lr_w", 1, stddev=0.0)
        self.w_dense = self.dense_var("lr_w_dense", (self.n_dense, 1))
        self.bias = self.dense_var("bias", (1,))
        if type(self).logits is LogisticRegression.logits:  # LR's own maths, not a subclass's
            from flinkdl.models.xla_lr import choose

            self._fast_step = choose(self)  # model.xla_step: auto (where it applies), true or false

    def linear(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """The first-order part, ``[B]``."""
        sparse = tf.reduce_sum(field_rows(self.w, ids, self.layout), axis=[1, 2])
        if self.cfg.linear_lr_scale != 1.0:  # a reparametrisation: the table's steps act ×scale
            sparse = sparse * self.cfg.linear_lr_scale
        return sparse + tf.matmul(dense, self.w_dense)[:, 0] + self.bias[0]

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        return self.linear(ids, dense)
