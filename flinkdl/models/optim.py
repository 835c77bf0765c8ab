"""The optimizers of a model's tables and dense variables (``tf.compat.v1.train``, sparse-aware)."""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import OptimizerConfig


def make_optimizer(cfg: OptimizerConfig) -> tf.compat.v1.train.Optimizer:
    """A ``tf.compat.v1.train`` optimizer (sparse-aware) for ``cfg``.

    ``l2`` > 0 selects the proximal variant of Adagrad / SGD (``l2_regularization_strength``),
    FTRL takes it directly. The l2 acts only on rows a step touches (lazy, as is usual for
    sparse tables).
    """
    lr, l2 = cfg.learning_rate, cfg.l2
    v1 = tf.compat.v1.train
    if cfg.name == "adagrad":
        if l2 > 0:
            return v1.ProximalAdagradOptimizer(lr, l2_regularization_strength=l2)
        return v1.AdagradOptimizer(lr)
    if cfg.name == "ftrl":
        return v1.FtrlOptimizer(lr, l2_regularization_strength=l2)
    if cfg.name == "sgd":
        if l2 > 0:
            return v1.ProximalGradientDescentOptimizer(lr, l2_regularization_strength=l2)
        return v1.GradientDescentOptimizer(lr)
    if cfg.name == "adam":  # dense variables only: v1 Adam decays its slots over the whole table
        return v1.AdamOptimizer(lr)
    raise ValueError(f"unknown optimizer {cfg.name!r} (known: adagrad, ftrl, sgd, adam)")


def create_slots(opt: tf.compat.v1.train.Optimizer, var_list: list[tf.Variable]) -> None:
    """Create ``opt``'s slots (and its own variables) for ``var_list`` without a step.

    ``tf.compat.v1.train.Optimizer`` creates them only inside ``apply_gradients``, and a step
    with zero gradients is not neutral for every optimizer (FTRL recomputes the weights, Adam
    advances its beta powers). Its private ``_create_slots`` is the one way: kept to this function.
    """
    opt._create_slots(var_list)


def scale_gradient(g: tf.Tensor | tf.IndexedSlices, s: tf.Tensor) -> tf.Tensor | tf.IndexedSlices:
    """``g * s``, keeping a sparse gradient sparse."""
    if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(g.values * s, g.indices, g.dense_shape)
    return g * s


def occurrence_counts(indices: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """How often each of ``indices`` occurs in ``ids`` (float32, same length; 1 for an index not in ``ids``)."""
    flat = tf.reshape(ids, [-1])
    distinct, _, counts = tf.unique_with_counts(tf.boolean_mask(flat, flat >= 0))  # bag padding: no occurrence
    # distinct ids keep positions 0..n-1; an index not among them gets a position >= n (count 1)
    both, at = tf.unique(tf.concat([distinct, tf.cast(indices, distinct.dtype)], axis=0))
    per = tf.concat([tf.cast(counts, tf.float32), tf.ones([tf.size(both) - tf.size(distinct)])], axis=0)
    return tf.gather(per, at[tf.size(distinct):])


def per_event_adagrad(opt: tf.compat.v1.train.AdagradOptimizer, var: tf.Variable, grad: tf.IndexedSlices,
                      ids: tf.Tensor, learning_rate: float) -> tf.Operation:
    """Adagrad on a table's rows, each step sized as if the batch had been learnt one event at a time.

    A row that occurs ``c`` times in the batch with summed gradient ``g`` adds ``g²/c`` to its
    accumulator (the sum of ``c`` equal per-event squares) and moves ``lr·g/√acc``: about what
    ``c`` per-event Adagrad steps move it, where plain Adagrad on the batch sum adds ``g²`` and so
    shrinks the step of ids frequent in a batch as the batch grows. With ``c = 1`` it is plain Adagrad.
    """
    with tf.init_scope():
        create_slots(opt, [var])
    acc = opt.get_slot(var, "accumulator")
    rows, pos = tf.unique(grad.indices)  # one entry per row (a table read twice gives two)
    g = tf.math.unsorted_segment_sum(grad.values, pos, tf.size(rows))
    c = occurrence_counts(rows, ids)
    c = tf.reshape(c, tf.concat([tf.shape(c), tf.ones([tf.rank(g) - 1], tf.int32)], axis=0))
    add = acc.scatter_add(tf.IndexedSlices(tf.square(g) / c, rows))
    with tf.control_dependencies([add]):
        step = learning_rate * g * tf.math.rsqrt(tf.gather(acc, rows))
        return var.scatter_sub(tf.IndexedSlices(step, rows)).op
