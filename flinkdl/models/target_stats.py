"""Online per-id target statistics: each id's smoothed click rate so far as extra dense inputs.

The classic CTR count features for rare ids (``model.target_stats``): a ``[buckets, 2]`` table of
each id's shows and clicks and a ``[2]`` vector of the totals, counted *prequentially*: a step's
rows read the counts of the steps before it, and are counted after they are scored (the counting
op runs after the reads, in the same step). For each single-valued id column a row gets

- ``logit((clicks + prior·p) / (shows + prior)) − logit(p)``, ``p`` the running global rate
  (``(clicks + 1) / (shows + 2)`` over every event so far): 0 for an unseen id, the id's
  evidence against the average as it accumulates;
- with ``counts``, ``prior / (shows + prior)``: how new the id is (1 unseen, → 0 when frequent), i.e. how
  much of that rate is the prior. Bounded and constant for frequent ids: ``log1p(shows)`` instead,
  which grows for ever on a small vocabulary, cost MovieLens with side fields 0.003-0.004 AUC
  (docs/BENCHMARKS.md).

``fields`` restricts them to the named single-valued fields (e.g. a stream's user and item ids, not
its side tables' few-valued fields, whose rates only repeat what their own weights learn quickly).
They are appended to the dense columns, so every model learns them as numeric inputs. The table is
registered as a sparse table (the parameter server stores it like the others, its rows' deltas
pushed as the weights' are) but takes no gradient and no optimizer state. Multi-valued fields and
crosses past the single columns get none (a bag's pooled rate would need its own smoothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf

from flinkdl.config.target_stats import TargetStatsConfig

if TYPE_CHECKING:
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models.base import ModelBase

TABLE, TOTAL = "target_stats", "target_stats_total"


def columns(cfg: TargetStatsConfig, layout: FeatureLayout) -> list[int]:
    """The id columns counted: every single one, or those of ``cfg.fields`` (by the layout's names)."""
    if cfg.fields is None:
        return list(range(layout.n_single))
    unknown = [f for f in cfg.fields if f not in layout.names]
    if unknown:
        raise ValueError(f"model.target_stats.fields: {unknown} are not single-valued id fields "
                         f"(have {list(layout.names)})")
    return sorted(layout.names.index(f) for f in set(cfg.fields))


def n_features(cfg: TargetStatsConfig | None, layout: FeatureLayout) -> int:
    """Dense columns the statistics add over ``layout`` (0 without them)."""
    return 0 if cfg is None else len(columns(cfg, layout)) * (2 if cfg.counts else 1)


class TargetStats:
    """The counts of one model and the ops that read and update them."""

    def __init__(self, model: ModelBase, cfg: TargetStatsConfig) -> None:
        self.cfg, cols = cfg, columns(cfg, model.layout)
        #: the counted columns: a slice when they are the first ones (every single column), else a gather
        self._cols = None if cols == list(range(len(cols))) else tf.constant(cols, tf.int32)
        self._n = len(cols)
        self.table = model.table(TABLE, 2, stddev=0.0)  # [shows, clicks] per id
        self.total = model.dense_var(TOTAL, (2,))

    def _single(self, ids: tf.Tensor) -> tf.Tensor:
        """The counted id columns of ``ids``, ``[B, columns]``."""
        return ids[:, :self._n] if self._cols is None else tf.gather(ids, self._cols, axis=1)

    def features(self, ids: tf.Tensor) -> tf.Tensor:
        """``[B, n_features]`` float32 from the counts as they are (no gradient)."""
        single = self._single(ids)
        rows = tf.stop_gradient(tf.gather(self.table, single))  # [B, columns, 2]
        total = tf.stop_gradient(self.total)
        p = (total[1] + 1.0) / (total[0] + 2.0)
        shows, clicks = rows[..., 0], rows[..., 1]
        rate = (clicks + self.cfg.prior * p) / (shows + self.cfg.prior)
        out = [tf.math.log(rate) - tf.math.log1p(-rate) - (tf.math.log(p) - tf.math.log1p(-p))]
        if self.cfg.counts:  # 1 for an unseen id, towards 0 as it is seen: bounded, flat for frequent ids
            out.append(self.cfg.prior / (shows + self.cfg.prior))
        return tf.concat(out, axis=1)

    def update(self, ids: tf.Tensor, labels: tf.Tensor) -> list:
        """The ops counting the rows ``(ids, labels)``: one show per id, its label as clicks."""
        single = self._single(ids)
        flat = tf.reshape(single, [-1])
        y = tf.reshape(tf.broadcast_to(labels[:, None], tf.shape(single)), [-1])
        counts = tf.stack([tf.ones_like(y), y], axis=1)
        rows = tf.cast(tf.shape(labels)[0], tf.float32)
        return [self.table.scatter_add(tf.IndexedSlices(counts, flat)),
                self.total.assign_add(tf.stack([rows, tf.reduce_sum(labels)]))]
