"""Collisionless ids in bounded memory (prototype): ids get rows of their own, admitted and evicted.

``model.name: dynamic`` wraps ``model.dynamic.base``: the featurizer's ids (use a wide
``features.hash_bits``, e.g. 31, so that distinct values practically never share an id) are mapped
to rows of a table of ``capacity`` rows by a TF hash table (``DenseHashTable``: id → row). An id
gets its own row once it was seen ``admit_after`` times (counted in a second hash table, cleared
every ``count_window_steps`` steps so that counting stays bounded); until then it reads a shared
per-field fallback row. When the table is full, the least recently used rows are evicted (and rows
unused for ``ttl_steps`` steps are freed), and their embedding and optimizer-slot values return to
their initial ones. Memory is ``capacity`` rows whatever the number of distinct ids, as with
hashing into ``capacity`` buckets, but frequent ids never collide.

Limits of this prototype: the id → row map is worker state, not stored on the parameter server
(``ps.enabled`` would store rows by position); one worker (parallelism 1).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from flinkdl.config.dynamic import DynamicConfig
from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model, register


class IdRows:
    """id → row of a ``capacity``-row table, with admission by count and LRU / TTL eviction."""

    def __init__(self, cfg: DynamicConfig, n_fields: int) -> None:
        self.cfg, self.capacity, self.n_fields = cfg, cfg.capacity, n_fields
        table = tf.lookup.experimental.DenseHashTable
        self.rows = table(tf.int64, tf.int64, default_value=-1, empty_key=-1, deleted_key=-2)
        self.counts = table(tf.int64, tf.int64, default_value=0, empty_key=-1, deleted_key=-2)
        self.owner = np.full(cfg.capacity, -1, np.int64)  # the id each row holds (-1: free)
        self.last = np.full(cfg.capacity, -1, np.int64)  # step each row was last read
        self.step = 0
        self.admitted = self.evicted = 0

    def map(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[B, F]`` for ids ``[B, F]`` (fallback ``capacity + f`` for a field-``f`` id not
        admitted), and the rows freed for new ids in this call (to reset)."""
        self.step += 1
        if self.cfg.count_window_steps and self.step % self.cfg.count_window_steps == 0:
            self.counts.erase(self.counts.export()[0])
        uniq, inv = np.unique(ids.ravel(), return_inverse=True)
        row = self.rows.lookup(tf.constant(uniq)).numpy()
        self.last[row[row >= 0]] = self.step
        new = uniq[row < 0]
        if self.cfg.admit_after > 1 and len(new):
            c = self.counts.lookup(tf.constant(new)).numpy() + 1
            self.counts.insert(tf.constant(new), tf.constant(c))
            new = new[c >= self.cfg.admit_after]
            if len(new):
                self.counts.erase(tf.constant(new))
        freed = self._make_room(len(new))
        if len(new):
            free = np.flatnonzero(self.owner < 0)[:len(new)]
            new = new[:len(free)]  # more new ids than rows not used in this batch: the rest wait
            self.rows.insert(tf.constant(new), tf.constant(free[:len(new)].astype(np.int64)))
            self.owner[free[:len(new)]] = new
            self.last[free[:len(new)]] = self.step
            self.admitted += len(new)
            row = self.rows.lookup(tf.constant(uniq)).numpy()
        out = row[inv].reshape(ids.shape)
        fallback = self.capacity + np.arange(ids.shape[1])[None, :]
        return np.where(out < 0, fallback, out), freed

    def _make_room(self, need: int) -> np.ndarray:
        """Free rows: those unused for ``ttl_steps``, then the least recently used, never one read now."""
        victims = np.zeros(0, np.int64)
        if self.cfg.ttl_steps:
            victims = np.flatnonzero((self.owner >= 0) & (self.last < self.step - self.cfg.ttl_steps))
        short = need - int((self.owner < 0).sum()) - len(victims)
        if short > 0:
            old = np.flatnonzero((self.owner >= 0) & (self.last < self.step))
            old = np.setdiff1d(old, victims, assume_unique=True)
            if len(old):
                k = min(short, len(old))
                victims = np.concatenate([victims, old[np.argpartition(self.last[old], k - 1)[:k]]])
        if len(victims):
            self.rows.erase(tf.constant(self.owner[victims]))
            self.owner[victims] = -1
            self.evicted += len(victims)
        return victims


@register("dynamic")
class DynamicIdModel(ModelBase):
    """``model.dynamic.base`` on rows given by :class:`IdRows` (see the module docstring)."""

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        self.dyn = cfg.dynamic or DynamicConfig()
        inner_layout = FeatureLayout(n_ids=layout.n_ids, n_dense=layout.n_dense,
                                     buckets=self.dyn.capacity + layout.n_ids)
        self.inner = build_model(inner_layout, cfg.model_copy(update={"name": self.dyn.base, "dynamic": None}))
        self.ids = IdRows(self.dyn, layout.n_ids)
        self.inner.create_optimizer_state()
        self._initial = {n: v[0].numpy().copy() for n, v in self._sparse_state().items()}

    def _sparse_state(self) -> dict[str, tf.Variable]:
        sparse = self.inner.sparse_names()
        slots = {k: v for k, v in self.inner.slot_variables().items() if k.rsplit("/", 1)[0] in sparse}
        return {**{n: self.inner.variables()[n] for n in sparse}, **slots}

    def _rows(self, ids: tf.Tensor | np.ndarray) -> np.ndarray:
        rows, freed = self.ids.map(np.asarray(ids))
        if len(freed):  # new ids start from the initial values, not from the evicted id's
            idx = tf.constant(freed)
            for name, var in self._sparse_state().items():
                init = np.broadcast_to(self._initial[name], (len(freed), *var.shape[1:]))
                var.scatter_update(tf.IndexedSlices(tf.constant(init, var.dtype), idx))
        return rows

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError("dynamic: ids are mapped outside the graph; use predict / predict_then_train")

    def predict(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        flat = np.asarray(ids)
        rows = self.ids.rows.lookup(tf.constant(flat.ravel())).numpy().reshape(flat.shape)
        fallback = self.dyn.capacity + np.arange(rows.shape[1])[None, :]
        return self.inner.predict(np.where(rows < 0, fallback, rows), dense)

    def predict_then_train(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                           labelled: np.ndarray | None = None) -> tf.Tensor:
        out = self.inner.predict_then_train(self._rows(ids), dense, labels, labelled)
        self._version.assign(self.inner.version)
        return out

    def variables(self) -> dict[str, tf.Variable]:
        return self.inner.variables()

    def sparse_names(self) -> frozenset[str]:
        return self.inner.sparse_names()

    def slot_variables(self) -> dict[str, tf.Variable]:
        return self.inner.slot_variables()

    def optimizers(self) -> tuple[tf.compat.v1.train.Optimizer, ...]:
        return self.inner.optimizers()

    def create_optimizer_state(self) -> None:
        self.inner.create_optimizer_state()

    def dense_optimizer_state(self) -> dict[str, tf.Variable]:
        return self.inner.dense_optimizer_state()
