"""Per-writer lanes: exactly-once model state at parallelism ≥ 2 (docs/EXACTLY_ONCE.md).

The PS state is ``base + Σ_w lane_w``: ``base`` is a committed version, ``lane_w`` the journal of
writer *w*'s deltas (*w*: a fenced writer name, one per Flink subtask). Each push of *w* is applied
to the live rows as always and also appended to *w*'s **open** journal. A **writer commit**
(``lane_commit``) seals the open journal as segment ``seq`` and writes it as delta files; a
**writer rollback** (``lane_rollback``) subtracts *w*'s deltas after segment ``seq`` (its later
segments and its open journal) from the live rows and drops those segments: the other writers'
lanes are untouched. A PS that starts rebuilds ``base + Σ_w (every committed segment of w)``.

Layout under the PS's checkpoint directory (per shard process on a sharded PS)::

    lanes/base.json                        {"version": V}: the version the lanes add to (null: empty)
    lanes/w/<writer>/s00000007/s0-emb.arrow  segment 7 of <writer>: (id, delta, init) of shard 0 of emb
    lanes/w/<writer>/s00000007/dense.arrow   its dense deltas (name, shape, value, init)
    lanes/w/<writer>/marks/v00000007.json  written last: segment 7 exists iff this file exists
    lanes/w/<writer>/f00000009/…           segments up to 9 folded into one (its mark names the dir)
    lanes/cuts/v00000003.json              a recorded cut {"cut": {writer: seq}} (PsCut)

Compaction (:mod:`flinkdl.ps.lane_compact`) folds a writer's segments up to a floor into one.

Rolled-back sums are float sums in another order than the live run's: equal within float32
rounding, not bit for bit. A row that a rolled-back push created keeps its start value (``init``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from flinkdl.ps.errors import PsError
from flinkdl.ps.version_docs import VersionDocs, write_json
from flinkdl.ps.wire import batch_rows, dense_items, dense_table, rows_batch

if TYPE_CHECKING:
    from flinkdl.ps.service import ParameterService

RowPart = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # (ids, delta, init)
Dense = dict[str, np.ndarray]


@dataclass
class Segment:
    """Deltas of one writer: rows per ``(shard, table)``, and dense variables (with their start values)."""

    rows: dict[tuple[int, str], list[RowPart]] = field(default_factory=dict)
    dense: list[tuple[Dense, Dense]] = field(default_factory=list)
    specs: dict[str, dict] = field(default_factory=dict)  # table → {"dim", "slots"} (to create it on restore)

    def merged(self) -> tuple[dict[tuple[int, str], RowPart], tuple[Dense, Dense]]:
        """One ``(ids, delta, init)`` per table (ids may repeat: they add up) and the summed dense deltas."""
        rows: dict[tuple[int, str], RowPart] = {}
        for key, parts in self.rows.items():
            ids = np.concatenate([p[0] for p in parts])
            delta = np.concatenate([p[1] for p in parts])
            init = np.concatenate([p[2] if p[2] is not None else np.zeros_like(p[1]) for p in parts])
            rows[key] = (ids, delta, init)
        total: Dense = {}
        start: Dense = {}
        for delta, init in self.dense:
            for n, d in delta.items():
                total[n] = total[n] + d if n in total else np.array(d, np.float32)
                start.setdefault(n, np.asarray(init.get(n, np.zeros_like(d)), np.float32))
        return rows, (total, start)


class LaneBook:
    """The lanes of one PS process, kept on ``fs`` under ``root/lanes``."""

    def __init__(self, fs: pafs.FileSystem, root: str) -> None:
        self.fs, self.root = fs, f"{root.rstrip('/')}/lanes"
        self.open: dict[str, Segment] = {}  # writer → its pushes since its last segment
        self.seq: dict[str, int] = {}  # writer → its last committed segment
        self.lock = threading.Lock()
        self.cuts = VersionDocs(fs, f"{self.root}/cuts")
        self._marks: dict[str, VersionDocs] = {}
        self._floors: dict[str, int] = {}  # writer → the segment its older ones were folded into

    # ------------------------------------------------------------------ files

    def _base_path(self) -> str:
        return f"{self.root}/base.json"

    def active(self) -> bool:
        """Whether lanes exist here (a base was recorded)."""
        return self.fs.get_file_info(self._base_path()).type == pafs.FileType.File

    def base(self) -> int | None:
        with self.fs.open_input_stream(self._base_path()) as f:
            v = json.loads(f.read())["version"]
        return None if v is None else int(v)

    def marks(self, writer: str) -> VersionDocs:
        if writer not in self._marks:
            self._marks[writer] = VersionDocs(self.fs, f"{self.root}/w/{writer}/marks")
        return self._marks[writer]

    def writers(self) -> list[str]:
        sel = pafs.FileSelector(f"{self.root}/w", allow_not_found=True)
        return sorted(i.base_name for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.Directory)

    def _seg_dir(self, writer: str, seq: int) -> str:
        return f"{self.root}/w/{writer}/s{seq:08d}"

    def floor(self, writer: str) -> int:
        """The newest segment that holds ``writer``'s older ones folded (0: none folded)."""
        if writer not in self._floors:
            marks = self.marks(writer)
            self._floors[writer] = next((s for s in reversed(marks.versions())
                                         if "folded_from" in marks.read(s)), 0)
        return self._floors[writer]

    def live(self, writer: str) -> list[int]:
        """``writer``'s segments, ascending (a folded one stands for every one before it)."""
        low = self.floor(writer)
        return [s for s in self.marks(writer).versions() if s >= low]

    def _write(self, writer: str, seq: int, seg: Segment, folded_from: int | None = None) -> int:
        rows, (dense, start) = seg.merged()
        d = self._seg_dir(writer, seq) if folded_from is None else f"{self.root}/w/{writer}/f{seq:08d}"
        self.fs.create_dir(d, recursive=True)
        files: dict[str, dict[str, str]] = {}
        for (shard, table), (ids, delta, init) in sorted(rows.items()):
            batch = rows_batch(ids, delta, init)
            path = f"{d}/s{shard}-{table}.arrow"
            with self.fs.open_output_stream(path) as f, pa.ipc.new_file(f, batch.schema) as w:
                w.write_batch(batch)
            files.setdefault(table, {})[str(shard)] = path.rsplit("/", 1)[1]
        if dense:
            t = dense_table(dense, start)
            with self.fs.open_output_stream(f"{d}/dense.arrow") as f, pa.ipc.new_file(f, t.schema) as w:
                w.write_table(t)
        mark = {"seq": seq, "tables": files, "dense": bool(dense), "specs": seg.specs}
        if folded_from is not None:
            mark.update(folded_from=folded_from, dir=d.rsplit("/", 1)[1])
        self.marks(writer).write(seq, mark)
        return int(sum(len(r[0]) for r in rows.values()))

    def read(self, writer: str, seq: int) -> Segment:
        """Segment ``seq`` of ``writer`` from its files."""
        m = self.marks(writer).read(seq)
        d = f"{self.root}/w/{writer}/{m['dir']}" if "dir" in m else self._seg_dir(writer, seq)
        seg = Segment(specs=m.get("specs", {}))
        for table, by_shard in m["tables"].items():
            for shard, name in by_shard.items():
                with self.fs.open_input_file(f"{d}/{name}") as f:
                    seg.rows[(int(shard), table)] = [batch_rows(pa.ipc.open_file(f).read_all())]
        if m["dense"]:
            with self.fs.open_input_file(f"{d}/dense.arrow") as f:
                t = pa.ipc.open_file(f).read_all()
            seg.dense.append((dense_items(t), dense_items(t, "init")))
        return seg

    def _drop(self, writer: str, seq: int) -> None:
        self.marks(writer).delete(seq)  # first: a segment without its mark does not exist
        self._drop_dir(self._seg_dir(writer, seq))

    def _drop_dir(self, d: str) -> None:
        if self.fs.get_file_info(d).type == pafs.FileType.Directory:
            self.fs.delete_dir(d)

    def clear(self) -> None:
        """Forget every lane (the whole state was replaced by a committed version)."""
        with self.lock:
            if self.fs.get_file_info(self.root).type == pafs.FileType.Directory:
                for sub in ("w", "base.json"):
                    info = self.fs.get_file_info(f"{self.root}/{sub}")
                    if info.type == pafs.FileType.Directory:
                        self.fs.delete_dir(info.path)
                    elif info.type == pafs.FileType.File:
                        self.fs.delete_file(info.path)
            self.open.clear()
            self.seq.clear()
            self._marks.clear()
            self._floors.clear()

    # ------------------------------------------------------------------ journal

    def record_rows(self, writer: str | None, shard: int, table: str, parts: list[RowPart]) -> None:
        """Journal a push (called under the table's lock, after it was applied)."""
        if writer is None:
            return
        with self.lock:
            seg = self.open.get(writer)
            if seg is not None:
                seg.rows.setdefault((shard, table), []).extend(
                    (np.array(i, np.int64), np.array(d, np.float32), None if s is None else np.array(s, np.float32))
                    for i, d, s in parts)

    def record_dense(self, writer: str | None, delta: Dense, init: Dense | None) -> None:
        if writer is None:
            return
        with self.lock:
            seg = self.open.get(writer)
            if seg is not None:
                seg.dense.append(({n: np.array(d, np.float32) for n, d in delta.items()},
                                  {n: np.array(v, np.float32) for n, v in (init or {}).items()}))

    def _lane(self, writer: str, base: int | None) -> None:
        """Open ``writer``'s lane (and the lanes' base, the first time) if it is not open."""
        if not self.active():
            self.fs.create_dir(self.root, recursive=True)
            write_json(self.fs, self._base_path(), {"version": base})
        if writer not in self.open:
            self.open[writer] = Segment()
            self.seq.setdefault(writer, self.marks(writer).latest() or 0)

    # ------------------------------------------------------------------ writer commit / rollback

    def commit(self, writer: str, seq: int | None, base: int | None, specs: dict[str, dict]) -> dict:
        """Seal ``writer``'s open journal as segment ``seq`` (default: the next); ``base``: the live
        state's committed version, recorded when the first lane opens; ``specs``: the table specs."""
        with self.lock:
            self._lane(writer, base)
            have = self.seq[writer]
            seq = have + 1 if seq is None else int(seq)
            if seq <= have:
                raise PsError(f"lane {writer!r}: segment {seq} is not after its last one ({have})")
            seg, self.open[writer] = self.open[writer], Segment()
            seg.specs = specs
            try:
                rows = self._write(writer, seq, seg)
            except BaseException:
                self.open[writer] = seg
                raise
            self.seq[writer] = seq
        return {"writer": writer, "seq": seq, "rows": rows}

    def take_back(self, writer: str, seq: int, base: int | None) -> list[Segment]:
        """What a rollback of ``writer`` to segment ``seq`` subtracts (its open journal, then its
        segments after ``seq``, newest first); those segments are dropped."""
        with self.lock:
            self._lane(writer, base)
            later = [s for s in self.live(writer) if s > seq]
            if seq < self.floor(writer):
                raise PsError(f"lane {writer!r}: segment {seq} was folded into segment {self.floor(writer)} "
                              "(compaction: keep more cuts, ps.retain)")
            if seq < 0 or seq > self.seq[writer]:
                raise PsError(f"lane {writer!r}: unknown segment {seq} (last committed {self.seq[writer]})")
            if seq and not self.marks(writer).exists(seq):
                raise PsError(f"lane {writer!r}: segment {seq} is gone (have {self.marks(writer).versions()})")
            out = [self.open[writer], *(self.read(writer, s) for s in reversed(later))]
            for s in later:
                self._drop(writer, s)
            self.open[writer] = Segment()
            self.seq[writer] = seq
        return out

    def info(self, writer: str) -> dict:
        with self.lock:
            seq = self.seq.get(writer)
            if seq is None and self.active():
                seq = self.marks(writer).latest()
        return {"writer": writer, "seq": seq}

    # ------------------------------------------------------------------ restore, cuts

    def segments(self, cut: dict[str, int] | None = None) -> list[Segment]:
        """Every committed segment (``cut``: each named writer's up to its seq, others none), in order."""
        out = []
        for w in self.writers() if cut is None else sorted(cut):
            if cut is not None and 0 < int(cut[w]) < self.floor(w):
                raise PsError(f"lane {w!r}: segment {cut[w]} of this cut was folded into {self.floor(w)}")
            out += [self.read(w, s) for s in self.live(w) if cut is None or s <= int(cut[w])]
        return out

    def restore_on_start(self) -> None:
        """Lanes known after a start: each writer at its newest segment, its journal empty."""
        for w in self.writers():
            self.seq[w] = self.marks(w).latest() or 0
            self.open[w] = Segment()

    def record_cut(self, cut_id: int, cut: dict[str, int]) -> dict:
        doc = {"id": int(cut_id), "cut": {str(w): int(s) for w, s in cut.items()}}
        self.cuts.write(int(cut_id), doc)
        return doc

    def list_cuts(self) -> list[dict]:
        return [self.cuts.read(c) for c in self.cuts.versions()]


def apply(svc: ParameterService, seg: Segment, sign: float) -> None:
    """Add (``sign`` 1, creating rows at their ``init``) or subtract (-1, existing rows only) ``seg``."""
    rows, (dense, start) = seg.merged()
    for (shard, table), (ids, delta, init) in rows.items():
        if shard not in svc.shard_ids or not len(ids):
            continue
        if table not in svc.list_tables() and table in seg.specs:
            svc.create_table(table, seg.specs[table]["dim"], seg.specs[table]["slots"])
        t = svc.table(table, shard)
        if sign > 0:
            t.push(ids, delta, init, checked=True)
        else:
            _, exists = t.pull(ids)
            t.push(ids[exists], -delta[exists], checked=True)
    if dense:
        if sign > 0:
            svc.dense.add(dense, start)
        else:
            have = svc.dense.get()
            svc.dense.add({n: -d for n, d in dense.items() if n in have})
