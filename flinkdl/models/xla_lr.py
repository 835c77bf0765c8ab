"""Logistic regression's Adagrad step as one XLA-compiled function (``model.xla_step``).

The generic step (:class:`~flinkdl.models.base.ModelBase`) is a gradient tape and a ``tf.compat.v1``
optimizer: TensorFlow kernels for the lookup's two gathers, the gradient's segment sum and the sparse
Adagrad apply, each with its per-row overhead (a table of one float per row costs as much per row as a
wide one). Here the same maths is written out and compiled by XLA, which fuses it into a few loops:
8-13 % less CPU per LR step on the click stream as a worker runs it, 29 % with steps back to back
(docs/BENCHMARKS.md).

Only the distinct ids stay outside XLA (``tf.unique`` has no XLA kernel). Their number changes every
batch, and XLA compiles one program per shape, so they are padded up to a multiple of
:data:`PAD_TO` with an id past the table's end: XLA's scatter skips such rows and its gather reads a
row nobody uses. The optimizer state is the v1 Adagrad optimizer's own accumulators (created at once),
so the parameter-server sync, which reads the model's variables and slots, sees the usual state.

Same formulas as the kernels (``ResourceSparseApplyAdagrad``: ``acc += g²; w -= lr·g/√acc`` per row;
``ResourceApplyAdagrad`` for the dense weights and the bias: ``w -= g·lr·acc^-½``), but XLA orders the
float operations its own way: scores and weights equal the generic step's to float32 rounding
(≤ 1e-6 on the click stream, tests/models/test_xla_lr.py), not bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf

from flinkdl.config.schema import ModelConfig

if TYPE_CHECKING:
    from flinkdl.models.lr import LogisticRegression

#: the padded length of the distinct ids is a multiple of this (a few programs compiled for a stream)
PAD_TO = 4096


def unsupported(cfg: ModelConfig, has_bags: bool) -> str | None:
    """Why ``model.xla_step`` cannot serve this LR (None: it can)."""
    opt, dense = cfg.optimizer, cfg.dense_optimizer or cfg.optimizer
    if opt.name != "adagrad" or dense != opt:
        return "one adagrad optimizer for every variable (dense_optimizer null)"
    if opt.l2 > 0 or opt.accumulator_decay < 1 or opt.max_accumulator is not None:
        return "plain adagrad (no l2, accumulator_decay or max_accumulator)"
    if cfg.micro_batch_rows is not None or cfg.fresh_scores or cfg.linear_lr_scale != 1.0:
        return "one step a batch (micro_batch_rows null), no fresh_scores, linear_lr_scale 1"
    if has_bags:
        return "single-valued id fields (no bags)"
    if cfg.target_stats is not None:
        return "no target_stats (its inputs and counts are the generic step's)"
    return None


class XlaLrStep:
    """``step(ids, dense, labels[, weights])`` → pre-update scores; updates ``model`` and its version."""

    def __init__(self, model: LogisticRegression) -> None:
        model.create_optimizer_state()
        (opt,) = model.optimizers()
        self.model, self.lr = model, float(model.cfg.optimizer.learning_rate)
        self.slots = [opt.get_slot(v, "accumulator") for v in (model.w, model.w_dense, model.bias)]
        n_ids, n_dense = model.layout.n_ids, model.layout.n_dense
        specs = [tf.TensorSpec([None, n_ids], tf.int64), tf.TensorSpec([None, n_dense], tf.float32),
                 tf.TensorSpec([None], tf.float32)]
        core = [tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int32), *specs[1:]]
        self._core = tf.function(self._update, input_signature=[*core, specs[2]], jit_compile=True)
        self._step = tf.function(self._outer, input_signature=specs, reduce_retracing=True)
        self._wstep = tf.function(self._outer, input_signature=[*specs, specs[2]], reduce_retracing=True)

    def __call__(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                 weights: tf.Tensor | None = None) -> tf.Tensor:
        return self._step(ids, dense, labels) if weights is None else self._wstep(ids, dense, labels, weights)

    def _outer(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
               weights: tf.Tensor | None = None) -> tf.Tensor:
        distinct, where = tf.unique(tf.reshape(ids, [-1]))
        n = tf.shape(distinct)[0]
        pad = tf.fill([(n + PAD_TO - 1) // PAD_TO * PAD_TO - n], tf.constant(self.model.layout.buckets, tf.int64))
        scores = self._core(tf.concat([distinct, pad], 0), where, dense, labels,
                            tf.ones_like(labels) if weights is None else weights)
        with tf.control_dependencies([scores]):
            self.model._version.assign_add(1)
            return tf.identity(scores)

    def _update(self, distinct: tf.Tensor, where: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                weights: tf.Tensor) -> tf.Tensor:
        m = self.model
        acc_w, acc_u, acc_b = self.slots
        rows = tf.gather(m.w, distinct)  # [D, 1]; a padded id reads some row, written nowhere
        batch, fields = tf.shape(labels)[0], m.layout.n_ids
        logits = (tf.reduce_sum(tf.reshape(tf.gather(rows[:, 0], where), [batch, fields]), axis=1)
                  + tf.matmul(dense, m.w_dense)[:, 0] + m.bias[0])
        scores = tf.sigmoid(logits)
        g = (scores - labels) * weights  # d(Σ weight · logloss) / d logit
        g_rows = tf.math.unsorted_segment_sum(tf.reshape(tf.tile(g[:, None], [1, fields]), [-1]), where,
                                              tf.shape(distinct)[0])[:, None]
        acc = tf.gather(acc_w, distinct) + g_rows * g_rows
        acc_w.scatter_update(tf.IndexedSlices(acc, distinct))  # padded ids: out of range, skipped
        m.w.scatter_update(tf.IndexedSlices(rows - self.lr * g_rows / tf.sqrt(acc), distinct))
        for var, slot, grad in ((m.w_dense, acc_u, tf.matmul(dense, g[:, None], transpose_a=True)),
                                (m.bias, acc_b, tf.reduce_sum(g)[None])):
            slot.assign_add(grad * grad)
            var.assign_sub(grad * self.lr * tf.math.rsqrt(slot))
        return scores
