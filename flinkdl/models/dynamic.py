"""Collisionless ids in bounded memory (prototype): ids get rows of their own, admitted and evicted.

``model.name: dynamic`` wraps ``model.dynamic.base``: the featurizer's ids (use a wide
``features.hash_bits``, e.g. 31, so that distinct values practically never share an id) are mapped
to rows of a table of ``capacity`` rows by a TF hash table (``DenseHashTable``: id → row). An id
gets its own row once it was seen ``admit_after`` times (counted in a second hash table, emptied
every ``count_window_steps`` steps or once it holds ``count_max_ids`` ids, so that counting stays
bounded); until then it reads a shared per-field fallback row. When the table is full, the least
recently used rows are evicted (and rows unused for ``ttl_steps`` steps are freed), and their
embedding and optimizer-slot values return to their initial ones. Memory is ``capacity`` rows
whatever the number of distinct ids, as with hashing into ``capacity`` buckets, but frequent ids
never collide.

Both hash tables are emptied in place, never replaced (TF does not free an eager table). A
``DenseHashTable`` never shrinks and keeps an erased key's bucket as deleted; with no empty bucket
left, looking up an absent id fails. So the id → row table has twice ``capacity`` buckets and is
emptied and refilled with the live ids after ``capacity / 2`` evictions.

The variable ``id_owner`` holds each row's id (4 × 16 bits, exact in float32), a sparse table like
the embeddings: with ``ps.enabled`` (parallelism 1) the parameter server keeps the rows by position
and, beside them, the id of each (:mod:`flinkdl.worker.hooks.ps_dynamic`); a restarted worker
rebuilds its map from it (:meth:`DynamicIdModel.restore_ids`). Not done: parallelism > 1 (ids
sharded by worker, or delta pushes on id-keyed rows).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from flinkdl.config.dynamic import DynamicConfig
from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model, register
from flinkdl.models.tensors import to_tensor

#: buckets of the occurrence counts' table when empty (it grows as it fills, and shrinks back when cleared)
COUNT_BUCKETS = 1 << 17
#: the sparse variable (and parameter-server table) holding each row's id
OWNER = "id_owner"


class IdRows:
    """id → row of a ``capacity``-row table, with admission by count and LRU / TTL eviction."""

    def __init__(self, cfg: DynamicConfig, n_fields: int) -> None:
        self.cfg, self.capacity, self.n_fields = cfg, cfg.capacity, n_fields
        # rows: twice ``capacity`` buckets, so that it never grows and keeps empty buckets between rebuilds
        self._buckets = 1 << max(4, (2 * cfg.capacity - 1).bit_length())
        self.rows = _table(-1, self._buckets)
        self.counts = _table(0, COUNT_BUCKETS)
        self.owner = np.full(cfg.capacity, -1, np.int64)  # the id each row holds (-1: free)
        self.last = np.full(cfg.capacity, -1, np.int64)  # step each row was last read
        self.step = 0
        self.admitted = self.evicted = self.rebuilds = 0
        self.changed = np.zeros(0, np.int64)  # rows whose id changed in the last call (freed or given)
        self._erased = 0  # ids erased from ``rows`` since it was last built: its deleted buckets

    def map(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[B, F]`` for ids ``[B, F]`` (fallback ``capacity + f`` for a field-``f`` id not
        admitted), and the rows freed for new ids in this call (to reset)."""
        self.step += 1
        self.changed = np.zeros(0, np.int64)
        window = self.cfg.count_window_steps and self.step % self.cfg.count_window_steps == 0
        if window or int(self.counts.size()) >= (self.cfg.count_max_ids or 4 * self.capacity):
            _clear(self.counts, COUNT_BUCKETS)  # erasing would leave its buckets (it never shrinks)
        uniq, inv = np.unique(ids.ravel(), return_inverse=True)
        row = self.rows.lookup(to_tensor(uniq)).numpy()
        self.last[row[row >= 0]] = self.step
        new = uniq[row < 0]
        if self.cfg.admit_after > 1 and len(new):
            c = self.counts.lookup(to_tensor(new)).numpy() + 1
            self.counts.insert(to_tensor(new), to_tensor(c))
            new = new[c >= self.cfg.admit_after]  # their counts stay until the window's end (no deleted buckets)
        freed = self._make_room(len(new))
        if len(new):
            free = np.flatnonzero(self.owner < 0)[:len(new)]
            new = new[:len(free)]  # more new ids than rows not used in this batch: the rest wait
            self.rows.insert(to_tensor(new), to_tensor(free[:len(new)].astype(np.int64)))
            self.owner[free[:len(new)]] = new
            self.last[free[:len(new)]] = self.step
            self.admitted += len(new)
            self.changed = np.union1d(self.changed, free[:len(new)])
            row = self.rows.lookup(to_tensor(uniq)).numpy()
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
            self.rows.erase(to_tensor(self.owner[victims]))
            self.owner[victims] = -1
            self.evicted += len(victims)
            self.changed = np.union1d(self.changed, victims)
            self._erased += len(victims)
            if 2 * self._erased >= self.capacity:
                self._rebuild()
        return victims

    def restore(self, owner: np.ndarray) -> None:
        """Take ``owner`` (the id of each row, -1: free) as the map, e.g. from the parameter server."""
        self.owner = np.array(owner, np.int64)
        self.last = np.where(self.owner >= 0, self.step, -1)
        self._rebuild()

    def _rebuild(self) -> None:
        """Build ``rows`` afresh from the live ids: a DenseHashTable keeps erased keys' buckets as
        deleted, and with no empty bucket left its lookup of an absent id fails."""
        live = np.flatnonzero(self.owner >= 0).astype(np.int64)
        _clear(self.rows, self._buckets)
        if len(live):
            self.rows.insert(to_tensor(self.owner[live]), to_tensor(live))
        self._erased = 0
        self.rebuilds += 1

    def stats(self) -> dict[str, int]:
        """Ids held, buckets and deleted buckets of both tables (exports them: for benches and tests)."""
        out = {"admitted": self.admitted, "evicted": self.evicted, "rebuilds": self.rebuilds,
               "rows_used": int((self.owner >= 0).sum()), "capacity": self.capacity}
        for name, table in (("rows", self.rows), ("counts", self.counts)):
            keys = table.export()[0].numpy()
            out |= {f"{name}_ids": int(table.size()), f"{name}_buckets": len(keys),
                    f"{name}_deleted": int((keys == -2).sum())}
        return out


def encode_ids(ids: np.ndarray) -> np.ndarray:
    """Ids ``[n]`` (>= 0, or -1) as float32 ``[n, 4]``: 16 bits each, low first (-1: all -1)."""
    ids = np.asarray(ids, np.int64)
    parts = (ids[:, None] >> np.arange(0, 64, 16, dtype=np.int64)[None, :]) & 0xFFFF
    return np.where(ids[:, None] < 0, -1, parts).astype(np.float32)


def decode_ids(code: np.ndarray) -> np.ndarray:
    """The inverse of :func:`encode_ids`."""
    parts = code.astype(np.int64)
    ids = (parts << np.arange(0, 64, 16, dtype=np.int64)[None, :]).sum(axis=1)
    return np.where(parts[:, 0] < 0, -1, ids)


def _table(default: int, buckets: int) -> tf.lookup.experimental.DenseHashTable:
    """An int64 → int64 hash table (ids -1 and -2 are its empty and deleted markers)."""
    return tf.lookup.experimental.DenseHashTable(tf.int64, tf.int64, default_value=default, empty_key=-1,
                                                 deleted_key=-2, initial_num_buckets=buckets)


def _clear(table: tf.lookup.experimental.DenseHashTable, buckets: int) -> None:
    """Empty ``table`` in place, with ``buckets`` buckets: TF never frees an eager hash table's
    memory, so replacing the table by a new one would leak the old one."""
    tf.raw_ops.LookupTableImportV2(table_handle=table.resource_handle,
                                   keys=to_tensor(np.full((buckets, 1), -1, np.int64)),
                                   values=to_tensor(np.zeros((buckets, 1), np.int64)))


@register("dynamic")
class DynamicIdModel(ModelBase):
    """``model.dynamic.base`` on rows given by :class:`IdRows` (see the module docstring)."""

    wraps_models = True

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        self.dyn = cfg.dynamic or DynamicConfig()
        inner_layout = FeatureLayout(n_ids=layout.n_ids, n_dense=layout.n_dense,
                                     buckets=self.dyn.capacity + layout.n_ids)
        self.inner = build_model(inner_layout, cfg.model_copy(update={"name": self.dyn.base, "dynamic": None}))
        self.ids = IdRows(self.dyn, layout.n_ids)
        self.rows_total = self.dyn.capacity + layout.n_ids  # own rows, then one fallback row per field
        # the id of each row as 4 × 16 bits (exact in float32; -1: free): a sparse table the PS keeps
        self.id_owner = tf.Variable(tf.fill([self.rows_total, 4], -1.0), trainable=False, name=OWNER)
        self.touched = np.zeros(0, np.int64)  # rows the last step read or gave to another id
        self.inner.create_optimizer_state()
        self._initial = {n: v[0].numpy().copy() for n, v in self._sparse_state().items()}

    def _sparse_state(self) -> dict[str, tf.Variable]:
        sparse = self.inner.sparse_names()
        slots = {k: v for k, v in self.inner.slot_variables().items() if k.rsplit("/", 1)[0] in sparse}
        return {**{n: self.inner.variables()[n] for n in sparse}, **slots}

    def _rows(self, ids: tf.Tensor | np.ndarray) -> np.ndarray:
        rows, freed = self.ids.map(np.asarray(ids))
        if len(freed):  # new ids start from the initial values, not from the evicted id's
            idx = to_tensor(freed)
            for name, var in self._sparse_state().items():
                init = np.broadcast_to(self._initial[name], (len(freed), *var.shape[1:]))
                var.scatter_update(tf.IndexedSlices(to_tensor(init.astype(var.dtype.as_numpy_dtype)), idx))
        changed = self.ids.changed
        if len(changed):
            code = encode_ids(self.ids.owner[changed])
            self.id_owner.scatter_update(tf.IndexedSlices(to_tensor(code), to_tensor(changed)))
        self.touched = np.union1d(np.unique(rows), changed)
        return rows

    def restore_ids(self) -> None:
        """Rebuild the id → row map from :attr:`id_owner` (after a parameter server loaded it)."""
        self.ids.restore(decode_ids(self.id_owner.numpy()[:self.dyn.capacity]))

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError("dynamic: ids are mapped outside the graph; use predict / predict_then_train")

    def predict(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        flat = np.asarray(ids)
        rows = self.ids.rows.lookup(to_tensor(flat.ravel())).numpy().reshape(flat.shape)
        fallback = self.dyn.capacity + np.arange(rows.shape[1])[None, :]
        return self.inner.predict(to_tensor(np.where(rows < 0, fallback, rows)), dense)

    def predict_then_train(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                           labelled: np.ndarray | None = None, weights: np.ndarray | None = None) -> tf.Tensor:
        out = self.inner.predict_then_train(to_tensor(self._rows(ids)), dense, labels, labelled, weights)
        self._version.assign(self.inner._version)  # a variable's value: no Python int to convert
        return out

    def variables(self) -> dict[str, tf.Variable]:
        return {**self.inner.variables(), OWNER: self.id_owner}

    def sparse_names(self) -> frozenset[str]:
        return self.inner.sparse_names() | {OWNER}

    def slot_variables(self) -> dict[str, tf.Variable]:
        return self.inner.slot_variables()

    def optimizers(self) -> tuple[tf.compat.v1.train.Optimizer, ...]:
        return self.inner.optimizers()

    def create_optimizer_state(self) -> None:
        self.inner.create_optimizer_state()

    def dense_optimizer_state(self) -> dict[str, tf.Variable]:
        return self.inner.dense_optimizer_state()
