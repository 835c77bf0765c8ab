"""Incremental, atomic checkpoints of the parameter server on any ``pyarrow.fs`` filesystem.

Layout under the checkpoint URI (a local directory or e.g. ``s3://bucket/prefix``)::

    data/v00000007/s0-emb.arrow      rows of shard 0 of table emb changed since v6 (Arrow IPC file)
    data/v00000007/dense.arrow       every dense variable (small)
    manifests/v00000007.json         written last: the version exists iff this file exists

A manifest names its parent, its kind (``delta`` or ``snapshot``), the table specs and its own
files. Restoring version *v* loads the nearest snapshot at or before *v* and applies each delta after
it, in order (rows hold absolute values; a later version wins). Manifests are written to a hidden
temporary name and then moved into place, so a half-written version is never visible; data files
of versions without a manifest are removed on start. Compaction merges a delta chain into a
snapshot for the same version (then rewrites that version's manifest); retention keeps the last K
versions and whatever their restores need.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import overload

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from flinkdl.ps.version_docs import VersionDocs
from flinkdl.ps.wire import batch_rows, dense_items, dense_table, rows_batch

TableSpec = dict  # {"dim": int, "slots": [str]}
ShardRows = dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]  # (shard, table) → (ids, rows)


def open_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` of a filesystem URI or a local path (relative ones too)."""
    return pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))


@dataclass
class State:
    """A restored version: table specs, rows per (shard, table), dense variables."""

    version: int
    tables: dict[str, TableSpec]
    rows: ShardRows
    dense: dict[str, np.ndarray]


class CheckpointStore:
    """Versions under ``uri``; ``shards`` fixes how rows are split into files."""

    def __init__(self, uri: str, shards: int = 1, retain: int = 5, compact_after: int = 8,
                 filesystem: pafs.FileSystem | None = None) -> None:
        """``uri``: a directory or filesystem URI; with ``filesystem``, a path inside it."""
        if filesystem is None:
            self.fs, root = open_uri(uri)
        else:
            self.fs, root = filesystem, uri
        self.root = root.rstrip("/")
        self.shards, self.retain, self.compact_after = shards, retain, compact_after
        self.lock = threading.RLock()
        self._compactor: threading.Thread | None = None
        self.docs = VersionDocs(self.fs, self._p("manifests"))  # the manifests, one per version
        self.fs.create_dir(self._p("data"), recursive=True)

    def _p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    # ------------------------------------------------------------------ manifests

    def versions(self) -> list[int]:
        return self.docs.versions()

    def latest(self) -> int | None:
        return self.docs.latest()

    def manifest(self, version: int) -> dict:
        return self.docs.read(version)

    def _write_manifest(self, m: dict) -> None:
        self.docs.write(m["version"], m)

    # ------------------------------------------------------------------ files

    def _write_rows(self, path: str, ids: np.ndarray, rows: np.ndarray) -> int:
        batch = rows_batch(ids, rows)
        with self.fs.open_output_stream(path) as f, pa.ipc.new_file(f, batch.schema) as w:
            w.write_batch(batch)
        return self.fs.get_file_info(path).size

    def _read_rows(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        with self.fs.open_input_file(path) as f:
            table = pa.ipc.open_file(f).read_all()
        ids, rows, _ = batch_rows(table)
        return ids, rows

    def _write_files(self, version: int, rows: ShardRows, dense: dict[str, np.ndarray],
                     prefix: str = "") -> tuple[dict, int]:
        d = self._p("data", f"v{version:08d}")
        self.fs.create_dir(d, recursive=True)
        files: dict[str, dict[str, str]] = {}
        nbytes = 0
        for (shard, table), (ids, r) in sorted(rows.items()):
            rel = f"data/v{version:08d}/{prefix}s{shard}-{table}.arrow"
            nbytes += self._write_rows(self._p(rel), ids, r)
            files.setdefault(table, {})[str(shard)] = rel
        rel = f"data/v{version:08d}/{prefix}dense.arrow"
        with self.fs.open_output_stream(self._p(rel)) as f, pa.ipc.new_file(f, dense_table(dense).schema) as w:
            w.write_table(dense_table(dense))
        nbytes += self.fs.get_file_info(self._p(rel)).size
        return {"tables": files, "dense": rel}, nbytes

    # ------------------------------------------------------------------ commit / restore

    def commit(self, version: int, parent: int | None, tables: dict[str, TableSpec], rows: ShardRows,
               dense: dict[str, np.ndarray], snapshot: bool = False, maintain: bool = True) -> dict:
        """Write ``rows`` (changed rows, or all rows if ``snapshot``) as ``version``; manifest last.
        ``maintain``: then compact or apply retention (a prepared, not yet committed version of a
        sharded PS waits for :meth:`maintain` until it is known to be committed).

        The new version inherits its parent's ``trained_event_ts`` (a lower bound until
        :meth:`annotate` raises it)."""
        t0 = time.perf_counter()
        with self.lock:
            files, nbytes = self._write_files(version, rows, dense)
            pm = self.manifest(parent) if parent is not None else {}
            depth = 0 if snapshot or parent is None else pm.get("depth", 0) + 1
            m = {"version": version, "parent": None if snapshot else parent,
                 "kind": "snapshot" if snapshot or parent is None else "delta", "depth": depth,
                 "tables": tables, "files": files, "shards": self.shards, "bytes": nbytes,
                 "rows": int(sum(len(i) for i, _ in rows.values())), "created": time.time(),
                 "trained_event_ts": pm.get("trained_event_ts")}
            self._write_manifest(m)
        m["seconds"] = time.perf_counter() - t0
        if maintain:
            self.maintain(version)
        return m

    def maintain(self, version: int) -> None:
        """After ``version`` is committed: compact its chain when it is long enough, else retention."""
        if self.manifest(version).get("depth", 0) >= self.compact_after:
            self.compact_async(version)
        else:
            self.gc()

    def discard(self, version: int) -> None:
        """Remove ``version`` (a prepared version that was never committed): its manifest, then its files."""
        with self.lock:
            self.docs.delete(version)
            d = self._p("data", f"v{version:08d}")
            if self.fs.get_file_info(d).type == pafs.FileType.Directory:
                self.fs.delete_dir(d)

    def annotate(self, version: int, trained_event_ts: int) -> int:
        """Raise ``version``'s ``trained_event_ts`` (epoch ms of the newest event trained into it) to
        at least ``trained_event_ts``; returns the value now stored."""
        with self.lock:
            m = self.manifest(version)
            have = m.get("trained_event_ts")
            if have is None or trained_event_ts > have:
                m["trained_event_ts"] = int(trained_event_ts)
                self._write_manifest(m)
            return int(m["trained_event_ts"])

    @overload
    def restore(self, version: int) -> State: ...

    @overload
    def restore(self, version: None = None) -> State | None: ...

    def restore(self, version: int | None = None) -> State | None:
        """Snapshot + deltas up to ``version`` (default latest); None when there is no version."""
        with self.lock:
            version = self.latest() if version is None else version
            if version is None:
                return None
            chain = [self.manifest(version)]
            while chain[-1]["kind"] != "snapshot":
                chain.append(self.manifest(chain[-1]["parent"]))
            chain.reverse()
            parts: dict[tuple[int, str], list] = {}
            for m in chain:
                for table, by_shard in m["files"]["tables"].items():
                    for shard, rel in by_shard.items():
                        parts.setdefault((int(shard), table), []).append(self._read_rows(self._p(rel)))
            with self.fs.open_input_file(self._p(chain[-1]["files"]["dense"])) as f:
                dense = dense_items(pa.ipc.open_file(f).read_all())
        tables = chain[-1]["tables"]
        rows = {k: _last_wins(v) for k, v in parts.items() if k[1] in tables}
        return State(version, tables, rows, dense)

    # ------------------------------------------------------------------ compaction / retention

    def compact(self, version: int) -> dict:
        """Rewrite ``version`` as a snapshot (merged from its chain), then apply retention."""
        state = self.restore(version)
        with self.lock:
            m = self.manifest(version)
            files, nbytes = self._write_files(version, state.rows, state.dense, prefix="snap-")
            m.update(kind="snapshot", parent=None, depth=0, files=files, bytes=nbytes, compacted=time.time())
            self._write_manifest(m)
        self.gc()
        return m

    def compact_async(self, version: int) -> None:
        """Compact in a background thread (one at a time; skipped while one runs)."""
        if self._compactor is not None and self._compactor.is_alive():
            return
        self._compactor = threading.Thread(target=self.compact, args=(version,), daemon=True,
                                           name=f"ps-compact-v{version}")
        self._compactor.start()

    def wait_compaction(self, timeout: float | None = None) -> None:
        if self._compactor is not None:
            self._compactor.join(timeout)

    def gc(self) -> None:
        """Keep the last ``retain`` versions and their chains; remove everything else (and orphans)."""
        with self.lock:
            versions = self.versions()
            keep: set[int] = set()
            manifests = {}
            for v in versions[-self.retain:]:
                while v is not None and v not in keep:
                    keep.add(v)
                    manifests[v] = m = self.manifest(v)
                    v = m["parent"]
            for v in versions:
                if v not in keep:
                    self.docs.delete(v)
            referenced = set()
            for m in manifests.values():
                referenced.add(m["files"]["dense"])
                referenced.update(rel for s in m["files"]["tables"].values() for rel in s.values())
            sel = pafs.FileSelector(self._p("data"), recursive=True, allow_not_found=True)
            for info in self.fs.get_file_info(sel):
                rel = info.path[len(self.root) + 1:] if self.root else info.path
                if info.type == pafs.FileType.File and rel not in referenced:
                    self.fs.delete_file(info.path)
            for info in self.fs.get_file_info(pafs.FileSelector(self._p("data"), allow_not_found=True)):
                if info.type == pafs.FileType.Directory and not self.fs.get_file_info(
                        pafs.FileSelector(info.path)):
                    self.fs.delete_dir(info.path)
            for info in self.fs.get_file_info(pafs.FileSelector(self._p("manifests"))):
                if info.base_name.startswith("."):  # a manifest whose move never happened
                    self.fs.delete_file(info.path)


def _last_wins(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``(ids, rows)`` in order; for a repeated id the last row wins."""
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    rev_ids = ids[::-1]
    uniq, first = np.unique(rev_ids, return_index=True)
    return uniq, rows[::-1][first]
