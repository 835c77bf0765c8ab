"""DeepFM: FM + an MLP (ReLU, sizes ``cfg.hidden``) on the concatenated field embeddings and dense features."""

from __future__ import annotations

import itertools

import tensorflow as tf

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.fm import FactorizationMachine
from flinkdl.models.registry import register


@register("deepfm")
class DeepFM(FactorizationMachine):
    """``logit = LR + FM + MLP([emb_1..emb_F, dense])``; the embeddings are shared by FM and MLP."""

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        sizes = [layout.n_fields * cfg.embedding_dim + self.n_dense, *cfg.hidden, 1]
        self.mlp = [
            (
                self.dense_var(f"mlp_{i}/kernel", (fan_in, fan_out), init="glorot"),
                self.dense_var(f"mlp_{i}/bias", (fan_out,)),
            )
            for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes))
        ]

    def deep(self, emb: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """MLP output ``[B]``."""
        width = self.layout.n_fields * self.cfg.embedding_dim
        h = tf.concat([tf.reshape(emb, [tf.shape(emb)[0], width]), dense], axis=1)
        for i, (kernel, bias) in enumerate(self.mlp):
            h = tf.matmul(h, kernel) + bias
            if i < len(self.mlp) - 1:
                h = tf.nn.relu(h)
        return h[:, 0]

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        emb = self.embed(ids)
        return self.linear(ids, dense) + self.fm_term(emb, dense) + self.deep(emb, dense)
