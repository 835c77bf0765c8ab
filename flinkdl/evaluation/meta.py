"""The evaluation columns that travel beside a feature batch: event time and slice value.

The featurize stage knows the raw columns; the evaluator (at the sink) needs, per good row, the
event time in ms (for time windows) and the value of ``evaluation.slice_field``. They travel as a
small Arrow IPC stream in the envelope's ``meta`` field (empty when nothing is configured), rows
aligned with the feature batch, untouched by the trainer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.config.schema import JobConfig


def _good_rows(raw: pa.RecordBatch | pa.Table, dead: list, position: int) -> np.ndarray:
    """Rows of ``raw`` the featurizer kept: those whose position is not a dead letter's."""
    from flinkdl.features.parse import POSITION_COLUMN

    n = raw.num_rows
    if POSITION_COLUMN in raw.schema.names:
        pos = raw.column(POSITION_COLUMN).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        pos = np.arange(position, position + n, dtype=np.int64)
    return ~np.isin(pos, np.fromiter((d.position for d in dead), np.int64, len(dead)))


def needs_meta(cfg: JobConfig) -> bool:
    ev = cfg.evaluation
    return bool(ev.slice_field) or any(w.kind.endswith("time") for w in ev.windows)


def eval_meta(raw: pa.RecordBatch | pa.Table, n_good: int, dead: list, position: int, cfg: JobConfig) -> bytes:
    """``ts`` (int64 ms) and/or ``slice`` (string) of the good rows, as an IPC stream; ``b""`` if unused."""
    if not needs_meta(cfg) or not n_good:
        return b""
    keep = _good_rows(raw, dead, position)
    if int(keep.sum()) != n_good:  # should not happen; evaluate without meta rather than misalign
        return b""
    cols, names = [], []
    ts_col = cfg.features.timestamp
    if ts_col and any(w.kind.endswith("time") for w in cfg.evaluation.windows) and ts_col in raw.schema.names:
        try:
            ts = pc.cast(raw.column(ts_col), pa.float64()).to_numpy(zero_copy_only=False)[keep]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ts = None
        if ts is not None and not np.isnan(ts).any():
            scale = 1000.0 if cfg.evaluation.timestamp_unit == "s" else 1.0
            cols.append(pa.array((ts * scale).astype(np.int64)))
            names.append("ts")
    field = cfg.evaluation.slice_field
    if field and field in raw.schema.names:
        cols.append(pc.cast(raw.column(field), pa.string()).filter(pa.array(keep)).fill_null(""))
        names.append("slice")
    if not cols:
        return b""
    batch = pa.RecordBatch.from_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
                                        for c in cols], names=names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def read_meta(meta: bytes | None, n: int) -> tuple[np.ndarray | None, pa.Array | None]:
    """``(ts_ms, slices)`` of a prediction batch of ``n`` rows (``None`` where absent or misaligned)."""
    if not meta:
        return None, None
    batch = pa.ipc.open_stream(bytes(meta)).read_next_batch()
    if batch.num_rows != n:
        return None, None
    names = batch.schema.names
    ts = batch.column("ts").to_numpy() if "ts" in names else None
    sl = batch.column("slice") if "slice" in names else None  # Arrow: the evaluator factorises it
    return ts, sl
