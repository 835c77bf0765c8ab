"""The parameter server's state and operations, independent of the transport.

Rows are routed to ``shards`` partitions by :func:`flinkdl.ps.wire.shard_of`; one process holds
``shard_ids`` of them (all by default; one each in a sharded PS of several processes, see
:mod:`flinkdl.ps.member`), each with its own lock. Pushes add deltas (so several workers
converge); a commit takes a consistent cut of every shard's changed rows (pushes wait during the
cut, not during the write) and persists it through :class:`flinkdl.ps.checkpoint.CheckpointStore`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import numpy as np

from flinkdl.ps.checkpoint import CheckpointStore, ShardRows, State
from flinkdl.ps.errors import PsError
from flinkdl.ps.fencing import Fences
from flinkdl.ps.lane_service import LaneCalls
from flinkdl.ps.store import DenseStore, Table
from flinkdl.ps.wire import shard_of


class RWLock:
    """Many readers (pushes) or one writer (the commit cut)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class ParameterService(LaneCalls):
    """Tables × shards, dense variables, versions; per-writer lanes (:mod:`flinkdl.ps.lanes`)."""

    def __init__(self, shards: int = 1, checkpoint: CheckpointStore | None = None,
                 shard_ids: Sequence[int] | None = None) -> None:
        """``shards``: partitions in all; ``shard_ids``: the ones this process holds (default all)."""
        if shards < 1:
            raise PsError(f"shards must be >= 1, got {shards}")
        self.shards = shards
        self.shard_ids = list(range(shards)) if shard_ids is None else list(shard_ids)
        self._local = {g: k for k, g in enumerate(self.shard_ids)}
        #: Changes at every start: a writer that saw another incarnation lost its uncommitted pushes.
        self.incarnation = uuid.uuid4().hex[:16]
        self.ckpt = checkpoint
        self.fences = Fences()  # persisted by the server when it has a checkpoint directory
        self.tables: list[dict[str, Table]] = [{} for _ in self.shard_ids]
        self.dense = DenseStore()
        self.base_version: int | None = None  # the version the live state derives from
        self._cut = RWLock()
        self._commit_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._committed_cache: tuple[int, ParameterService] | None = None
        self.lanes = None
        self._cut_cache = None
        if checkpoint is not None:
            if checkpoint.shards != shards:
                raise PsError(f"checkpoint was written with {checkpoint.shards} shards, server has {shards}")
            state = self._restore_on_start(checkpoint)
            if state is not None:
                self._load(state)
            self._restore_lanes(checkpoint)

    def _restore_on_start(self, checkpoint: CheckpointStore) -> State | None:
        """The state to start from: the latest version (files of half-written ones removed first)."""
        checkpoint.gc()
        return checkpoint.restore()

    # ------------------------------------------------------------------ tables

    def create_table(self, name: str, dim: int, slots: list[str] | tuple[str, ...] = ()) -> dict:
        """Create ``name`` on every shard; creating it again with the same spec is a no-op."""
        if not name or "/" in name or name.startswith("."):
            raise PsError(f"bad table name {name!r}")
        with self._meta_lock:
            have = self.tables[0].get(name)
            if have is not None:
                if have.dim != dim or have.slots != tuple(slots):
                    raise PsError(f"table {name!r} exists with dim {have.dim}, slots {list(have.slots)}; "
                                  f"asked for dim {dim}, slots {list(slots)}")
            else:
                for shard in self.tables:
                    shard[name] = Table(name, dim, tuple(slots))
        return self.describe(name)

    def table(self, name: str, shard: int = 0) -> Table:
        if shard not in self._local:
            raise PsError(f"shard {shard} is not held here (this server holds shards {self.shard_ids} "
                          f"of {self.shards})")
        t = self.tables[self._local[shard]].get(name)
        if t is None:
            raise PsError(f"unknown table {name!r} (have {sorted(self.tables[0])})")
        return t

    def describe(self, name: str) -> dict:
        parts = [self.table(name, s).describe() for s in self.shard_ids]
        out = dict(parts[0])
        out["rows"] = sum(p["rows"] for p in parts)
        out["rows_per_shard"] = [p["rows"] for p in parts]
        return out

    def list_tables(self) -> list[str]:
        return sorted(self.tables[0])

    # ------------------------------------------------------------------ rows

    def push(self, name: str, shard: int, ids: np.ndarray, delta: np.ndarray,
             init: np.ndarray | None = None) -> int:
        """Add ``delta`` to rows of ``ids`` (all on ``shard``); all or nothing."""
        ids = np.ascontiguousarray(ids, np.int64)
        delta = np.asarray(delta, np.float32)
        delta = delta if delta.ndim == 2 else delta.reshape(len(ids), -1)
        return self.push_many(name, shard, [(ids, delta, init)])

    def push_many(self, name: str, shard: int, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                  assign: bool = False, writer: str | None = None) -> int:
        """Several ``(ids, delta, init)`` parts of one request: all checked first, then applied.
        ``assign``: the rows are set to ``delta`` (see :meth:`Table.push`); ``writer``: journal the
        deltas in that writer's lane, if it has one open."""
        t = self.table(name, shard)
        for ids, delta, init in parts:
            t.check(ids, delta)
            if init is not None:
                t.check(ids, init, "init")
            if self.shards > 1 and len(ids) and (shard_of(ids, self.shards) != shard).any():
                raise PsError(f"push to shard {shard} of {name!r} holds ids of other shards; nothing applied")
        self._cut.acquire_read()
        try:
            with t.lock:  # one request is applied atomically with respect to other pushes and commits
                for ids, delta, init in parts:
                    t.push(ids, delta, init, checked=True, assign=assign)
                if self.lanes is not None and writer in self.lanes.open:
                    if assign:
                        raise PsError(f"writer {writer!r} has a lane: its pushes must be deltas, not assigned values")
                    self.lanes.record_rows(writer, shard, name, parts)
        finally:
            self._cut.release_read()
        return sum(len(p[0]) for p in parts)

    def pull(self, name: str, shard: int, ids: np.ndarray | None,
             version: int | str | dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, rows, exists)``: live rows, or those of a committed ``version`` (``"latest"``).

        ``ids=None`` means every row of the shard.
        """
        src = self if version is None else self._committed(version)
        t = src.table(name, shard)
        if ids is None:
            all_ids, rows = t.all_rows()
            return all_ids, rows, np.ones(len(all_ids), bool)
        rows, exists = t.pull(ids)
        return ids, rows, exists

    def _committed(self, version: int | str | dict) -> ParameterService:
        if isinstance(version, dict):  # {"cut": {writer: seq}}: the lanes' base plus those segments
            return self._at_cut(version["cut"])
        if self.ckpt is None:
            raise PsError("this server has no --checkpoint-dir: no committed versions")
        v = self.ckpt.latest() if version == "latest" else int(version)
        if v is None:
            raise PsError("no committed version yet")
        cached = self._committed_cache
        if cached is None or cached[0] != v:
            view = ParameterService(self.shards, shard_ids=self.shard_ids)
            state = self.ckpt.restore(v)
            view._load(state)
            self._committed_cache = cached = (v, view)
        return cached[1]

    # ------------------------------------------------------------------ dense

    def dense_add(self, delta: dict[str, np.ndarray], init: dict[str, np.ndarray] | None = None,
                  writer: str | None = None) -> None:
        self._cut.acquire_read()
        try:
            self.dense.add(delta, init)
            if self.lanes is not None:
                self.lanes.record_dense(writer, delta, init)
        finally:
            self._cut.release_read()

    def dense_get(self, version: int | str | dict | None = None) -> dict[str, np.ndarray]:
        return (self if version is None else self._committed(version)).dense.get()

    # ------------------------------------------------------------------ versions

    def commit(self) -> dict:
        """Persist the rows changed since the last version (plus dense variables) as a new version."""
        if self.ckpt is None:
            raise PsError("this server has no --checkpoint-dir: cannot commit")
        with self._commit_lock:
            m, _ = self._write_version((self.ckpt.latest() or 0) + 1, self.base_version)
        return {k: m[k] for k in ("version", "parent", "kind", "rows", "bytes", "seconds")}

    def _write_version(self, version: int, parent: int | None, maintain: bool = True) -> tuple[dict, ShardRows]:
        """Cut the changed rows and write them as ``version`` (caller holds the commit lock); returns the
        manifest and the rows written. ``maintain``: compact or apply retention afterwards."""
        assert self.ckpt is not None
        self._cut.acquire_write()
        try:
            rows = {(s, name): t.take_dirty() for s, shard in zip(self.shard_ids, self.tables, strict=True)
                    for name, t in shard.items()}
            dense = self.dense.get()
            specs = {n: {"dim": t.dim, "slots": list(t.slots)} for n, t in self.tables[0].items()}
        finally:
            self._cut.release_write()
        try:
            m = self.ckpt.commit(version, parent, specs, rows, dense, maintain=maintain)
        except BaseException:
            self._mark_dirty(rows)
            raise
        self.base_version = version
        return m, rows

    def _mark_dirty(self, rows: ShardRows) -> None:
        """Flag ``rows`` as changed again (a version that was not written or was thrown away)."""
        for (s, name), (ids, _) in rows.items():
            if s in self._local and name in self.tables[self._local[s]]:
                self.table(name, s).mark_dirty(ids)

    def versions(self) -> list[dict]:
        if self.ckpt is None:
            return []
        out = []
        for v in self.ckpt.versions():
            m = self.ckpt.manifest(v)
            out.append({k: m.get(k) for k in ("version", "parent", "kind", "rows", "bytes", "created",
                                              "trained_event_ts")})
        return out

    def annotate(self, version: int, trained_event_ts: int) -> dict:
        """Record that committed ``version`` holds events up to ``trained_event_ts`` (epoch ms)."""
        if self.ckpt is None:
            raise PsError("this server has no --checkpoint-dir: no versions to annotate")
        return {"version": version, "trained_event_ts": self.ckpt.annotate(version, trained_event_ts)}

    def rollback(self, version: int) -> dict:
        """Replace the live state (uncommitted pushes included) by committed ``version``."""
        if self.ckpt is None:
            raise PsError("this server has no --checkpoint-dir: no versions to roll back to")
        state = self.ckpt.restore(int(version))
        with self._commit_lock:
            self._cut.acquire_write()
            try:
                self._load(state)
                if self.lanes is not None:  # the whole state was replaced: no lane adds to it any more
                    self.lanes.clear()
            finally:
                self._cut.release_write()
        return {"version": state.version, "tables": self.list_tables()}

    def _load(self, state: State) -> None:
        tables: list[dict[str, Table]] = [{} for _ in self.shard_ids]
        for name, spec in state.tables.items():
            for local in tables:
                local[name] = Table(name, spec["dim"], tuple(spec["slots"]))
        for (s, name), (ids, rows) in state.rows.items():
            if len(ids) and s in self._local:
                tables[self._local[s]][name].load(ids, rows)
        self.tables = tables
        self.dense.replace(state.dense)
        self.base_version = state.version

    def fence(self, writer: str) -> int:
        """A new epoch for ``writer``: its older attempts' writes are refused from now on."""
        return self.fences.issue(writer)

    def health(self) -> dict:
        rows = sum(t.size for shard in self.tables for t in shard.values())
        mem = sum(t.nbytes for shard in self.tables for t in shard.values())
        return {"ok": True, "shards": self.shards, "shard_ids": self.shard_ids, "incarnation": self.incarnation,
                "tables": self.list_tables(), "rows": int(rows),
                "table_bytes": int(mem), "base_version": self.base_version,
                "latest_version": self.ckpt.latest() if self.ckpt else None,
                "checkpoint": self.ckpt is not None}
