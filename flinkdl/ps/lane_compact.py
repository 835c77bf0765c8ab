"""Compaction of writer lanes (:mod:`flinkdl.ps.lanes`): without it a lane keeps one segment per push
for the whole run, and a PS that starts replays every one of them.

A writer's segments up to a **floor** are folded into one segment stored under the floor's number
(its deltas summed per row, so it is as large as the rows the writer touched, not as the stream). The
floor of writer *w* is the lowest ``seq`` of *w* in the cuts that are kept (the newest ``keep``
recorded cuts, :func:`floors`): every kept cut, and every anchor a restore can roll back to (a
checkpoint's anchors are at or after its cut, and its cut is kept while it is among the newest
``keep``), is at or after the floor, so no rollback or cut read needs a folded segment alone.
Older cut records are dropped. A writer missing from some kept cut is not folded.

Crash safety: the folded files go to a new directory, then the floor's mark is rewritten to name it
(``folded_from``: the first segment it holds); only then are the older segments removed. A start
between the two steps reads the marks from the newest folded one on (:meth:`LaneBook.live`).
"""

from __future__ import annotations

import numpy as np

from flinkdl.ps.lanes import Dense, LaneBook, RowPart, Segment


def fold_segments(segments: list[Segment]) -> Segment:
    """One segment equal to applying ``segments`` in order: deltas summed per row; a row's start value
    (``init``) and a dense variable's are those of its first occurrence."""
    out = Segment()
    parts: dict[tuple[int, str], list[RowPart]] = {}
    dense: list[tuple[Dense, Dense]] = []
    for seg in segments:
        rows, (total, start) = seg.merged()
        for key, part in rows.items():
            parts.setdefault(key, []).append(part)
        if total:
            dense.append((total, start))
        out.specs.update(seg.specs)
    for key, ps in parts.items():
        ids = np.concatenate([p[0] for p in ps])
        delta = np.concatenate([p[1] for p in ps])
        init = np.concatenate([p[2] if p[2] is not None else np.zeros_like(p[1]) for p in ps])
        uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        summed = np.zeros((len(uniq), *delta.shape[1:]), np.float32)
        np.add.at(summed, inverse.reshape(-1), delta)
        out.rows[key] = [(uniq.astype(np.int64), summed, init[first])]
    out.dense = [Segment(dense=dense).merged()[1]] if dense else []
    return out


def fold(book: LaneBook, writer: str, floor: int) -> int:
    """Fold ``writer``'s segments up to ``floor`` into one; returns how many were folded (0: nothing to do)."""
    with book.lock:
        if floor > book.seq.get(writer, book.marks(writer).latest() or 0):
            return 0
        folded = [s for s in book.live(writer) if s <= floor]
        if not folded or folded[-1] != floor or len(folded) == 1:
            return 0
        seg = fold_segments([book.read(writer, s) for s in folded])
        book._write(writer, floor, seg, folded_from=folded[0])
        book._floors[writer] = floor
        for s in [v for v in book.marks(writer).versions() if v < floor]:
            book._drop(writer, s)
        book._drop_dir(book._seg_dir(writer, floor))
        for s in folded[:-1]:
            book._drop_dir(f"{book.root}/w/{writer}/f{s:08d}")
    return len(folded)


def drop_cuts_below(book: LaneBook, cut_id: int) -> int:
    """Remove the cut records older than ``cut_id``; returns how many."""
    old = [c for c in book.cuts.versions() if c < cut_id]
    for c in old:
        book.cuts.delete(c)
    return len(old)


def floors(cuts: list[dict], keep: int) -> tuple[dict[str, int], int | None]:
    """``({writer: floor}, id of the oldest kept cut)`` for the newest ``keep`` of ``cuts`` (oldest
    first, as :meth:`PsClient.cuts` returns them); nothing while there are ``keep`` or fewer."""
    if keep < 1 or len(cuts) <= keep:
        return {}, None
    kept = cuts[-keep:]
    writers = set.intersection(*(set(c["cut"]) for c in kept))
    return {w: min(int(c["cut"][w]) for c in kept) for w in sorted(writers)}, int(kept[0]["id"])
