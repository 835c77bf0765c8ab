"""Per-batch freshness stamps, carried as schema metadata of the envelope's evaluation columns.

Three epoch-ms values travel with a batch (each absent when unknown):

- ``arrived_ms``: when the batch reached the featurize stage (set there, with ``metrics.enabled``);
- ``scored_ms``: when the model scored it (set by the trainer, or the serving job);
- ``model_ts``: event time of the newest labelled event the scoring model had trained on.

So a batch's scoring latency is ``scored_ms - arrived_ms`` and its model age ``scored_ms - model_ts``
(``model_age_ms`` of every prediction). An envelope without evaluation columns gets a zero-column
stream of the right row count, so :func:`~flinkdl.exchange.eval_columns.read_eval_columns` still
reads it.

>>> data = stamp(b"", 2, arrived_ms=1000)
>>> s = read_stamps(stamp(data, 2, scored_ms=1040, model_ts=400))
>>> s.latency_ms, s.model_age_ms
(40, 640)
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

KEYS = ("arrived_ms", "scored_ms", "model_ts")


@dataclass(frozen=True)
class Stamps:
    """A batch's freshness stamps (epoch ms; None: unknown)."""

    arrived_ms: int | None = None
    scored_ms: int | None = None
    model_ts: int | None = None

    @property
    def latency_ms(self) -> int | None:
        """Arrival at the featurize stage → scored."""
        return None if self.arrived_ms is None or self.scored_ms is None else self.scored_ms - self.arrived_ms

    @property
    def model_age_ms(self) -> int | None:
        """Scored − event time of the newest event the model had trained on."""
        return None if self.model_ts is None or self.scored_ms is None else self.scored_ms - self.model_ts


def _batch(data: bytes, rows: int) -> pa.RecordBatch:
    if data:
        return pa.ipc.open_stream(bytes(data)).read_next_batch()
    return pa.RecordBatch.from_struct_array(pa.array([{}] * rows, pa.struct([])))


def stamp(data: bytes, rows: int, **values: int | None) -> bytes:
    """The evaluation columns ``data`` (of ``rows`` rows; ``b""``: none) with ``values`` set (None: kept)."""
    unknown = set(values) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown stamps {sorted(unknown)} (known: {KEYS})")
    batch = _batch(data, rows)
    meta = dict(batch.schema.metadata or {})
    meta.update({k.encode(): str(int(v)).encode() for k, v in values.items() if v is not None})
    batch = batch.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def read_stamps(data: bytes | None) -> Stamps:
    """The stamps of evaluation columns ``data`` (all None when there are none)."""
    if not data:
        return Stamps()
    meta = pa.ipc.open_stream(bytes(data)).schema.metadata or {}
    got = {k: int(meta[k.encode()]) for k in KEYS if k.encode() in meta}
    return Stamps(**got)
