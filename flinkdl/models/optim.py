"""The optimizers of a model's tables and dense variables (``tf.compat.v1.train``, sparse-aware)."""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import OptimizerConfig
from flinkdl.models.decayed_adagrad import DecayedAdagradOptimizer


def make_optimizer(cfg: OptimizerConfig) -> tf.compat.v1.train.Optimizer:
    """A ``tf.compat.v1.train`` optimizer (sparse-aware) for ``cfg``.

    ``l2`` > 0 selects the proximal variant of Adagrad / SGD (``l2_regularization_strength``),
    FTRL takes it directly. The l2 acts only on rows a step touches (lazy, as is usual for
    sparse tables).
    """
    lr, l2, acc = cfg.learning_rate, cfg.l2, cfg.initial_accumulator
    v1 = tf.compat.v1.train
    if cfg.name == "adagrad":
        if cfg.accumulator_decay < 1 or cfg.max_accumulator is not None:
            if l2 > 0:
                raise ValueError("model optimizer: l2 with accumulator_decay / max_accumulator is not supported")
            return DecayedAdagradOptimizer(lr, acc, cfg.accumulator_decay, cfg.max_accumulator)
        if l2 > 0:
            return v1.ProximalAdagradOptimizer(lr, acc, l2_regularization_strength=l2)
        return v1.AdagradOptimizer(lr, acc)
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

