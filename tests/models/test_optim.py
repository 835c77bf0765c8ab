"""The optimizer factory: config → ``tf.compat.v1.train`` optimizer."""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import OptimizerConfig
from flinkdl.models.optim import create_slots, make_optimizer


def test_adagrad_starts_from_the_configured_accumulator() -> None:
    for l2 in (0.0, 0.01):
        var = tf.Variable(tf.zeros([3, 2]))
        opt = make_optimizer(OptimizerConfig(name="adagrad", learning_rate=0.1, l2=l2, initial_accumulator=0.5))
        create_slots(opt, [var])
        assert float(tf.reduce_max(tf.abs(opt.get_slot(var, "accumulator") - 0.5))) == 0.0
    assert OptimizerConfig().initial_accumulator == 0.1  # TensorFlow's own default: unchanged behaviour


def test_decay_or_cap_selects_the_decayed_adagrad() -> None:
    from flinkdl.models.decayed_adagrad import DecayedAdagradOptimizer

    assert type(make_optimizer(OptimizerConfig())) is tf.compat.v1.train.AdagradOptimizer  # the default: plain
    for cfg in (OptimizerConfig(accumulator_decay=0.99), OptimizerConfig(max_accumulator=10.0)):
        var = tf.Variable(tf.zeros([3, 2]))
        opt = make_optimizer(cfg)
        assert isinstance(opt, DecayedAdagradOptimizer)
        create_slots(opt, [var])  # the slot is Adagrad's: the PS and checkpoints see the same state
        assert float(tf.reduce_max(tf.abs(opt.get_slot(var, "accumulator") - 0.1))) == 0.0
