"""Adagrad whose accumulators can forget: a sparse ``tf.compat.v1.train`` optimizer.

Each weight's accumulator is ``acc ← decay · acc + g²`` (``decay`` 1: Adagrad), optionally
capped at ``max_accumulator``, and the step is ``lr · g / √acc``. Plain Adagrad's accumulators
only grow, so its steps shrink for ever and a model re-learns slowly after an abrupt drift; a
decay < 1 bounds the accumulator near ``g² / (1 − decay)`` (RMSprop without its ``1 − decay``
factor, so ``initial_accumulator`` and ``learning_rate`` keep Adagrad's meaning), a cap floors
the step size. The decay is applied when a row is touched (lazily, as every sparse optimizer here).
``model.fresh_scores`` estimates a step's in-step shifts with plain Adagrad's formula (no decay, no cap).
"""

from __future__ import annotations

import tensorflow as tf


class DecayedAdagradOptimizer(tf.compat.v1.train.AdagradOptimizer):
    """Adagrad with ``acc ← decay · acc + g²`` and an optional cap on ``acc``; slot ``accumulator`` as Adagrad's."""

    def __init__(self, learning_rate: float, initial_accumulator_value: float = 0.1, decay: float = 1.0,
                 max_accumulator: float | None = None, name: str = "DecayedAdagrad") -> None:
        super().__init__(learning_rate, initial_accumulator_value, name=name)
        self._decay = decay
        self._max_acc = max_accumulator

    def _new_acc(self, acc: tf.Tensor, grad: tf.Tensor) -> tf.Tensor:
        a = acc * tf.cast(self._decay, acc.dtype) + tf.square(grad)
        if self._max_acc is not None:
            a = tf.minimum(a, tf.cast(self._max_acc, acc.dtype))
        return a

    def _lr(self, dtype: tf.DType) -> tf.Tensor:
        return tf.cast(self._learning_rate_tensor, dtype)

    def _resource_apply_dense(self, grad: tf.Tensor, var: tf.Variable) -> tf.Operation:
        acc = self.get_slot(var, "accumulator")
        a = self._new_acc(acc.read_value(), grad)
        with tf.control_dependencies([acc.assign(a)]):
            return var.assign_sub(self._lr(grad.dtype) * grad * tf.math.rsqrt(a)).op

    def _resource_apply_sparse(self, grad: tf.Tensor, var: tf.Variable, indices: tf.Tensor) -> tf.Operation:
        acc = self.get_slot(var, "accumulator")
        a = self._new_acc(tf.gather(acc, indices), grad)
        with tf.control_dependencies([acc.scatter_update(tf.IndexedSlices(a, indices))]):
            step = self._lr(grad.dtype) * grad * tf.math.rsqrt(a)
            return var.scatter_sub(tf.IndexedSlices(step, indices)).op

    def _apply_dense(self, grad: tf.Tensor, var: tf.Variable) -> tf.Operation:
        return self._resource_apply_dense(grad, var)

    def _apply_sparse(self, grad: tf.IndexedSlices, var: tf.Variable) -> tf.Operation:
        return self._resource_apply_sparse(grad.values, var, grad.indices)
