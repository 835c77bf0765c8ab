"""Field rows of a batch with multi-valued fields: single ids looked up, bags pooled (sum or mean).

A bag's padding (:data:`~flinkdl.exchange.schema.PAD`) reads no table row, so it gets no gradient,
and no optimizer state moves for it: only the real ids are gathered, then scattered into place.
"""

from __future__ import annotations

import tensorflow as tf

from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import lookup


def field_rows(table: tf.Variable, ids: tf.Tensor, layout: FeatureLayout) -> tf.Tensor:
    """``[B, n_fields, dim]``: the row of each single id column, then each bag's pooled rows.

    Without bags this is :func:`~flinkdl.models.base.lookup` (``n_fields == n_ids``).
    """
    if not layout.bags:
        return lookup(table, ids)
    valid = ids >= 0
    at = tf.where(valid)  # [K, 2]: only real ids are read
    rows = lookup(table, tf.gather_nd(ids, at))  # [K, dim]
    dim = tf.constant(table.shape[1], tf.int64)
    shape = tf.shape(ids, out_type=tf.int64)
    full = tf.scatter_nd(at, rows, tf.stack([shape[0], shape[1], dim]))  # pads: zeros
    parts, start = [full[:, :layout.n_single]], layout.n_single
    for bag in layout.bags:
        pooled = tf.reduce_sum(full[:, start:start + bag.max_len], axis=1)
        if bag.pooling == "mean":
            count = tf.reduce_sum(tf.cast(valid[:, start:start + bag.max_len], tf.float32), axis=1)
            pooled = pooled / tf.maximum(count, 1.0)[:, None]
        parts.append(pooled[:, None, :])
        start += bag.max_len
    return tf.concat(parts, axis=1)
