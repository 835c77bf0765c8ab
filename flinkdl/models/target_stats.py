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
    from flinkdl.models.base import ModelBase

TABLE, TOTAL = "target_stats", "target_stats_total"


def n_features(cfg: TargetStatsConfig | None, n_single: int) -> int:
    """Dense columns the statistics add for ``n_single`` single id columns (0 without them)."""
    return 0 if cfg is None else n_single * (2 if cfg.counts else 1)


class TargetStats:
    """The counts of one model and the ops that read and update them."""

    def __init__(self, model: ModelBase, cfg: TargetStatsConfig) -> None:
        self.cfg, self.n_single = cfg, model.layout.n_single
        self.table = model.table(TABLE, 2, stddev=0.0)  # [shows, clicks] per id
        self.total = model.dense_var(TOTAL, (2,))

    def features(self, ids: tf.Tensor) -> tf.Tensor:
        """``[B, n_features]`` float32 from the counts as they are (no gradient)."""
        single = ids[:, :self.n_single]
        rows = tf.stop_gradient(tf.gather(self.table, single))  # [B, n_single, 2]
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
        single = ids[:, :self.n_single]
        flat = tf.reshape(single, [-1])
        y = tf.reshape(tf.broadcast_to(labels[:, None], tf.shape(single)), [-1])
        counts = tf.stack([tf.ones_like(y), y], axis=1)
        rows = tf.cast(tf.shape(labels)[0], tf.float32)
        return [self.table.scatter_add(tf.IndexedSlices(counts, flat)),
                self.total.assign_add(tf.stack([rows, tf.reduce_sum(labels)]))]
