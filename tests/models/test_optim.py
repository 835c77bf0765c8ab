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
