"""In-memory parameter tables: int64 id → float32 row (value + optimizer slots), vectorised.

A :class:`Table` keeps its rows in one growable ``[capacity, width]`` float32 array; ``width`` is
``dim * (1 + len(slots))`` (the value first, then each slot). Ids map to row positions through a
two-level sorted index (a big sorted ``main`` array plus a small sorted ``recent`` array merged
into ``main`` when it grows past 1/8 of it), so lookups and inserts are ``np.searchsorted`` over
whole batches: no per-row Python. A ``dirty`` flag per row says what changed since the last
committed version (what an incremental checkpoint writes).

>>> t = Table("emb", dim=2)
>>> t.push(np.array([5, 9]), np.ones((2, 2), np.float32))
>>> t.pull(np.array([9, 7]))[0].tolist(), t.pull(np.array([9, 7]))[1].tolist()
([[1.0, 1.0], [0.0, 0.0]], [True, False])
"""

from __future__ import annotations

import threading

import numpy as np

from flinkdl.ps.errors import PsError

#: Index bytes per row: id in the index (8) + position in the index (8) + position → id (8) + dirty (1).
INDEX_BYTES_PER_ROW = 25


class Table:
    """One embedding table; all methods take and return whole batches. Thread-safe."""

    def __init__(self, name: str, dim: int, slots: tuple[str, ...] = (), capacity: int = 1024) -> None:
        if dim < 1:
            raise PsError(f"table {name!r}: dim must be >= 1, got {dim}")
        self.name, self.dim, self.slots = name, int(dim), tuple(slots)
        self.width = self.dim * (1 + len(self.slots))
        self.lock = threading.RLock()
        self._data = np.zeros((capacity, self.width), np.float32)
        self._ids = np.zeros(capacity, np.int64)  # position → id
        self._dirty = np.zeros(capacity, bool)
        self.size = 0
        self._main_k = np.zeros(0, np.int64)
        self._main_p = np.zeros(0, np.int64)
        self._rec_k = np.zeros(0, np.int64)
        self._rec_p = np.zeros(0, np.int64)

    # ------------------------------------------------------------------ index

    @staticmethod
    def _find(keys: np.ndarray, pos: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if len(keys) == 0:
            return np.full(len(ids), -1, np.int64)
        i = np.searchsorted(keys, ids)
        i = np.minimum(i, len(keys) - 1)
        return np.where(keys[i] == ids, pos[i], -1)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row position of each id, -1 where absent (queries are sorted first: binary searches
        over sorted queries walk the index in order, 10x faster than random ones)."""
        if len(ids) > 4096 and not is_sorted(ids):
            order = np.argsort(ids, kind="stable")
            out = np.empty(len(ids), np.int64)
            out[order] = self.positions(ids[order])
            return out
        p = self._find(self._main_k, self._main_p, ids)
        miss = p < 0
        if miss.any() and len(self._rec_k):
            p[miss] = self._find(self._rec_k, self._rec_p, ids[miss])
        return p

    def _rows(self) -> np.ndarray:
        """The row array viewed as one opaque item per row: whole-row scatter without numpy's slow
        2-D fancy assignment."""
        return self._data.view(np.dtype((np.void, 4 * self.width))).reshape(-1)

    def _grow(self, need: int) -> None:
        cap = len(self._ids)
        if need <= cap:
            return
        cap = max(need, cap * 2)
        for attr in ("_data", "_ids", "_dirty"):
            old = getattr(self, attr)
            new = np.zeros((cap, *old.shape[1:]), old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, attr, new)

    def _insert(self, new_ids: np.ndarray) -> np.ndarray:
        """Append distinct, absent ``new_ids``; returns their positions."""
        n = len(new_ids)
        self._grow(self.size + n)
        pos = np.arange(self.size, self.size + n, dtype=np.int64)
        self._ids[self.size: self.size + n] = new_ids
        self.size += n
        keys = np.concatenate([self._rec_k, new_ids])
        vals = np.concatenate([self._rec_p, pos])
        order = np.argsort(keys, kind="stable")
        self._rec_k, self._rec_p = keys[order], vals[order]
        if len(self._rec_k) > max(65536, len(self._main_k) // 8):
            keys = np.concatenate([self._main_k, self._rec_k])
            vals = np.concatenate([self._main_p, self._rec_p])
            order = np.argsort(keys, kind="stable")
            self._main_k, self._main_p = keys[order], vals[order]
            self._rec_k = self._rec_p = np.zeros(0, np.int64)
        return pos

    # ------------------------------------------------------------------ data

    def check(self, ids: np.ndarray, rows: np.ndarray, what: str = "delta") -> None:
        """Refuse wrong shapes and non-finite values (before anything is applied)."""
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise PsError(f"table {self.name!r}: {what} rows have width {rows.shape[1:]} but the table has "
                          f"width {self.width} (dim {self.dim} x (1 + {len(self.slots)} slots))")
        if len(ids) != len(rows):
            raise PsError(f"table {self.name!r}: {len(ids)} ids but {len(rows)} {what} rows")
        if not np.isfinite(rows).all():
            bad = int(ids[~np.isfinite(rows).all(axis=1)][0])
            raise PsError(f"table {self.name!r}: {what} for id {bad} has NaN or infinite values; nothing applied")

    def push(self, ids: np.ndarray, delta: np.ndarray, init: np.ndarray | None = None,
             checked: bool = False, assign: bool = False) -> None:
        """Add ``delta`` to the rows of ``ids``; a row created here starts at ``init`` (else zeros).

        Duplicate ids in one push add up. ``assign``: set the rows to ``delta`` instead (a single
        writer's push of its values; ``init`` is not used, the last of duplicate ids wins).
        """
        ids = np.ascontiguousarray(ids, np.int64)
        delta = np.asarray(delta, np.float32).reshape(len(ids), -1) if len(ids) else \
            np.zeros((0, self.width), np.float32)
        if not checked:
            self.check(ids, delta)
        if init is not None:
            init = np.asarray(init, np.float32).reshape(len(ids), -1)
            if not checked:
                self.check(ids, init, "init")
        with self.lock:
            pos = self.positions(ids)
            absent = pos < 0
            if absent.any():
                new_ids, first = np.unique(ids[absent], return_index=True)
                new_pos = self._insert(new_ids)
                if init is not None and not assign:
                    self._data[new_pos] = init[np.flatnonzero(absent)[first]]
                pos[absent] = new_pos[np.searchsorted(new_ids, ids[absent])]
            if assign:
                self._rows()[pos] = np.ascontiguousarray(delta).view(self._rows().dtype).reshape(-1)
            elif _has_duplicates(ids):  # same ids ⇔ same rows
                np.add.at(self._data, pos, delta)
            else:
                new = np.take(self._data, pos, axis=0)
                new += delta
                self._rows()[pos] = new.view(self._rows().dtype).reshape(-1)
            self._dirty[pos] = True

    def load(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Bulk-load distinct ``ids`` into an empty table (restore): no per-batch index merges."""
        with self.lock:
            if self.size:
                raise PsError(f"table {self.name!r}: load needs an empty table")
            ids = np.array(ids, np.int64)
            self._data = np.require(rows, np.float32, ["C", "W"])
            self._ids, self._dirty, self.size = ids, np.zeros(len(ids), bool), len(ids)
            order = np.argsort(ids, kind="stable")
            self._main_k, self._main_p = ids[order], order.astype(np.int64)
            self._rec_k = self._rec_p = np.zeros(0, np.int64)

    def pull(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows [n, width], exists [n])``; absent rows are zeros."""
        ids = np.ascontiguousarray(ids, np.int64)
        with self.lock:
            pos = self.positions(ids)
            exists = pos >= 0
            rows = np.take(self._data, np.where(exists, pos, 0), axis=0) if self.size else \
                np.zeros((len(ids), self.width), np.float32)
        rows[~exists] = 0
        return rows, exists

    def all_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every ``(ids, rows)``, copies."""
        with self.lock:
            return self._ids[: self.size].copy(), self._data[: self.size].copy()

    def take_dirty(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, rows)`` changed since the last call; clears the flags (see :meth:`mark_dirty`)."""
        with self.lock:
            pos = np.flatnonzero(self._dirty[: self.size])
            self._dirty[pos] = False
            if len(pos) == self.size:  # everything changed (e.g. the first version): plain copies
                return self._ids[: self.size].copy(), self._data[: self.size].copy()
            return self._ids[pos], np.take(self._data, pos, axis=0)

    def mark_dirty(self, ids: np.ndarray) -> None:
        """Flag rows again (a commit that failed to write)."""
        with self.lock:
            pos = self.positions(np.asarray(ids, np.int64))
            self._dirty[pos[pos >= 0]] = True

    @property
    def nbytes(self) -> int:
        """Memory held (allocated capacity, rows and index)."""
        return int(self._data.nbytes + len(self._ids) * 17 + 16 * (len(self._main_k) + len(self._rec_k)))

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim, "slots": list(self.slots), "width": self.width,
                "rows": int(self.size), "bytes_per_row": 4 * self.width + INDEX_BYTES_PER_ROW}


def is_sorted(a: np.ndarray) -> bool:
    return bool(len(a) < 2 or (a[1:] >= a[:-1]).all())


def _has_duplicates(a: np.ndarray) -> bool:
    s = a if is_sorted(a) else np.sort(a)
    return bool(len(s) > 1 and (s[1:] == s[:-1]).any())


class DenseStore:
    """Dense variables by name (float32 arrays of any shape), delta-add or set. Thread-safe."""

    def __init__(self) -> None:
        self.vars: dict[str, np.ndarray] = {}
        self.lock = threading.Lock()

    def add(self, items: dict[str, np.ndarray], init: dict[str, np.ndarray] | None = None) -> None:
        """Add each delta; a variable created here starts at ``init[name]`` (else zeros)."""
        init = init or {}
        with self.lock:
            for name, d in items.items():
                have = self.vars.get(name)
                if have is not None and have.shape != d.shape:
                    raise PsError(f"dense {name!r}: shape {d.shape} but the server has {have.shape}; "
                                  "nothing applied")
                if not np.isfinite(d).all() or (name in init and not np.isfinite(init[name]).all()):
                    raise PsError(f"dense {name!r}: NaN or infinite values; nothing applied")
            for name, d in items.items():
                base = self.vars.get(name)
                if base is None:
                    base = init.get(name, np.zeros_like(d)).astype(np.float32)
                self.vars[name] = (base + d).astype(np.float32)

    def get(self) -> dict[str, np.ndarray]:
        with self.lock:
            return {k: v.copy() for k, v in self.vars.items()}

    def replace(self, items: dict[str, np.ndarray]) -> None:
        with self.lock:
            self.vars = {k: np.asarray(v, np.float32) for k, v in items.items()}
