"""Sparse updates without the optimizer's own deduplication where the indices are distinct already.

A ``tf.compat.v1.train`` optimizer first sums a sparse gradient's duplicate indices (``tf.unique`` +
``unsorted_segment_sum``) unless its class handles duplicates itself. A table read once per step
through :func:`~flinkdl.models.base.lookup` gets a gradient whose indices are the output of that
lookup's ``tf.unique``: nothing to sum, and the sum of one value is that value, so skipping it changes
no bit. :func:`skip_known_distinct` makes an optimizer skip it for exactly those gradients (seen in the
traced graph); any other sparse gradient (a table read twice: concatenated indices) is deduplicated
as before.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def known_distinct(indices: tf.Tensor) -> bool:
    """Whether graph tensor ``indices`` is (a reshape of) the distinct values of a ``tf.unique``."""
    op = getattr(indices, "op", None)
    while op is not None and op.type == "Reshape":
        indices = op.inputs[0]
        op = indices.op
    return op is not None and op.type in ("Unique", "UniqueV2") and indices.value_index == 0


def skip_known_distinct(opt: tf.compat.v1.train.Optimizer) -> tf.compat.v1.train.Optimizer:
    """``opt``, applying a gradient with :func:`known_distinct` indices without deduplicating it
    (only if its class keeps the base class's deduplication; returned for chaining)."""
    base = tf.compat.v1.train.Optimizer._resource_apply_sparse_duplicate_indices
    if type(opt)._resource_apply_sparse_duplicate_indices is not base:
        return opt  # the class handles duplicates its own way: left alone

    def apply(grad: tf.Tensor, handle: Any, indices: tf.Tensor, **kwargs: Any) -> Any:
        if known_distinct(indices):
            return opt._resource_apply_sparse(grad, handle, indices, **kwargs)
        return base(opt, grad, handle, indices, **kwargs)

    opt._resource_apply_sparse_duplicate_indices = apply
    return opt
