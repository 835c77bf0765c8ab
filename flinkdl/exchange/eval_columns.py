"""The evaluation columns that travel beside a feature batch: event time and slice value.

The featurize stage knows the raw columns; the evaluator (at the sink) needs, per good row, the
event time in ms (for time windows) and the value of ``evaluation.slice_field``; the Kafka
publisher writes the event time as the prediction's ``event_ts``. They travel as a
small Arrow IPC stream in the envelope's ``eval_columns`` field (empty when nothing is
configured), rows aligned with the feature batch, untouched by the trainer. The rows are those
of the featurizer's keep-mask; any misalignment raises :class:`EvalColumnsMismatch`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.config.schema import EvaluationConfig


class EvalColumnsMismatch(ValueError):
    """The evaluation columns do not line up with the rows they belong to."""


class EvalColumns:
    """Takes ``ts`` (int64 ms) and/or ``slice`` (string) of the kept rows of a raw batch.

    ``timestamp``: the raw column of event time (``features.timestamp``), in
    ``evaluation.timestamp_unit``; taken for time windows, and for ``event_ts`` of the published
    predictions when ``event_time`` is set (a Kafka predictions sink).
    """

    def __init__(self, evaluation: EvaluationConfig, timestamp: str | None, event_time: bool = False) -> None:
        self.time_windows = any(w.kind.endswith("time") for w in evaluation.windows)
        self.timestamp = timestamp if self.time_windows or event_time else None
        self.scale = 1000.0 if evaluation.timestamp_unit == "s" else 1.0
        self.slice_field = evaluation.slice_field

    @property
    def needed(self) -> bool:
        """Whether the evaluator reads any column (else every batch carries ``b""``)."""
        return bool(self.slice_field) or self.timestamp is not None

    def take(self, raw: pa.RecordBatch | pa.Table, keep: np.ndarray) -> bytes:
        """The columns of the rows of ``raw`` where ``keep`` is true, as an IPC stream; ``b""`` if unused."""
        if len(keep) != raw.num_rows:
            raise EvalColumnsMismatch(f"keep-mask of {len(keep)} rows for a raw batch of {raw.num_rows}")
        if not self.needed or not keep.any():
            return b""
        cols, names = [], []
        if self.timestamp and self.timestamp in raw.schema.names:
            try:
                ts = pc.cast(raw.column(self.timestamp), pa.float64()).to_numpy(zero_copy_only=False)[keep]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                ts = None
            if ts is not None and not np.isnan(ts).any():
                cols.append(pa.array((ts * self.scale).astype(np.int64)))
                names.append("ts")
        if self.slice_field and self.slice_field in raw.schema.names:
            cols.append(pc.cast(raw.column(self.slice_field), pa.string()).filter(pa.array(keep)).fill_null(""))
            names.append("slice")
        if not cols:
            return b""
        batch = pa.RecordBatch.from_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
                                            for c in cols], names=names)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as w:
            w.write_batch(batch)
        return sink.getvalue().to_pybytes()


def read_eval_columns(data: bytes | None, n: int) -> tuple[np.ndarray | None, pa.Array | None]:
    """``(ts_ms, slices)`` of a prediction batch of ``n`` rows (``None`` where absent).

    Raises :class:`EvalColumnsMismatch` when the columns have another number of rows.
    """
    if not data:
        return None, None
    batch = pa.ipc.open_stream(bytes(data)).read_next_batch()
    if batch.num_rows != n:
        raise EvalColumnsMismatch(f"evaluation columns of {batch.num_rows} rows for {n} predictions")
    names = batch.schema.names
    ts = batch.column("ts").to_numpy() if "ts" in names else None
    sl = batch.column("slice") if "slice" in names else None  # Arrow: the evaluator factorises it
    return ts, sl
