"""Append prediction batches (:data:`~flinkdl.exchange.schema.PREDICTION_SCHEMA`) to CSV or JSON lines.

One writer appends to one file (a *part*; pass ``part`` to give each parallel subtask its own
``<stem>-<part><suffix>`` next to the configured path). Reopening an existing file appends to
it: the CSV header is written only into an empty file (and checked otherwise), and a torn last
line left by a crash is cut off first, so the file stays parseable. Floats are written as the
shortest decimal that reads back to the same float32 (Arrow's float32 → string cast), and
:func:`read_predictions` parses them straight to float32, so scores round-trip bit for bit.
Non-finite floats come back as null (CSV ``nan``/empty; JSON ``null``). Each row also carries
``model_age_ms`` (:data:`FILE_SCHEMA`): scoring time − event time of the newest event the model had
trained on, the same for a whole batch (null when unknown); :func:`read_predictions` returns it
with ``freshness=True``.

>>> import tempfile, pathlib
>>> from flinkdl.config.schema import PredictionsSink
>>> path = pathlib.Path(tempfile.mkdtemp()) / "preds.jsonl"
>>> batch = pa.RecordBatch.from_pydict({"event_id": [7], "score": [0.1], "label": [1.0],
...     "model_version": [3]}, schema=PREDICTION_SCHEMA)
>>> with PredictionWriter(PredictionsSink(path=path, format="jsonl")) as w:
...     w.write(batch)
>>> path.read_text()
'{"event_id":7,"score":0.1,"label":1,"model_version":3,"model_age_ms":null}\\n'
>>> read_predictions(path).equals(pa.Table.from_batches([batch]))
True
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Literal, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from flinkdl.config.schema import PredictionsSink
from flinkdl.exchange.schema import PREDICTION_SCHEMA

JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_NAMES = PREDICTION_SCHEMA.names
#: What a predictions file holds: the predictions and their batch's model age.
FILE_SCHEMA = PREDICTION_SCHEMA.append(pa.field("model_age_ms", pa.int64()))


def part_path(path: Path, part: str | int | None) -> Path:
    """``preds.csv`` with part ``3`` → ``preds-3.csv``; ``None`` → the path itself."""
    return path if part is None else path.with_name(f"{path.stem}-{part}{path.suffix}")


def open_append(path: Path) -> BinaryIO:
    """Open ``path`` for appending (creating parents), first cutting a torn last line (no ``\\n``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+b")  # noqa: SIM115 - owned by the caller
    end = f.seek(0, io.SEEK_END)
    pos = end
    while pos > 0:  # scan back for the last newline
        step = min(pos, 1 << 16)
        f.seek(pos - step)
        chunk = f.read(step)
        if pos == end and chunk.endswith(b"\n"):
            return f
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            pos -= step - nl - 1
            break
        pos -= step
    f.truncate(pos)
    f.seek(0, io.SEEK_END)
    return f


def _csv_header() -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(FILE_SCHEMA.empty_table(), buf)
    return buf.getvalue()


def _conform(batch: pa.RecordBatch, model_age_ms: int | None) -> pa.RecordBatch:
    """The prediction columns in schema order, then ``model_age_ms``; wrong or missing columns are an error."""
    age = pa.array(np.full(batch.num_rows, model_age_ms or 0, np.int64),
                   mask=None if model_age_ms is not None else np.ones(batch.num_rows, bool))
    if batch.schema.names == _NAMES and batch.schema.equals(PREDICTION_SCHEMA, check_metadata=False):
        return pa.RecordBatch.from_arrays([*batch.columns, age], schema=FILE_SCHEMA)
    bad = [
        f"{f.name}: {batch.schema.field(f.name).type if f.name in batch.schema.names else 'missing'}"
        f" (want {f.type})"
        for f in PREDICTION_SCHEMA
        if f.name not in batch.schema.names or batch.schema.field(f.name).type != f.type
    ]
    if bad:
        raise ValueError("prediction batch does not match PREDICTION_SCHEMA: " + "; ".join(bad))
    return pa.RecordBatch.from_arrays([*(batch.column(n) for n in _NAMES), age], schema=FILE_SCHEMA)


def _jsonl(batch: pa.RecordBatch) -> pa.Buffer:
    """All rows as JSON lines in one buffer, built column-wise with Arrow kernels (no per-row Python)."""
    parts: list[object] = []
    for i, field in enumerate(FILE_SCHEMA):
        col = batch.column(i)
        text = pc.cast(col, pa.string())
        if pa.types.is_floating(field.type):
            text = pc.if_else(pc.is_finite(col), text, pa.scalar(None, pa.string()))
        parts += [("{" if i == 0 else ",") + f'"{field.name}":', pc.fill_null(text, "null")]
    lines = pc.binary_join_element_wise(*parts, "}\n", "")
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, 4 * lines.offset)
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


class PredictionWriter:
    """Appends prediction batches to ``sink.path`` (or its ``part``) as CSV or JSON lines."""

    def __init__(self, sink: PredictionsSink, part: str | int | None = None) -> None:
        self.format: Literal["csv", "jsonl"] = sink.format
        self.path = part_path(Path(sink.path), part)
        self.rows = 0
        self._file: BinaryIO | None = open_append(self.path)
        self._csv: pacsv.CSVWriter | None = None
        if self.format == "csv":
            header, size = _csv_header(), self._file.tell()
            if size:
                self._file.seek(0)
                found = self._file.read(len(header))
                self._file.seek(0, io.SEEK_END)
                if found != header:
                    self._file.close()
                    raise ValueError(f"{self.path} exists with another header: {found[:80]!r}")
            opts = pacsv.WriteOptions(include_header=size == 0)
            self._csv = pacsv.CSVWriter(self._file, FILE_SCHEMA, write_options=opts)

    def write(self, batch: pa.RecordBatch | pa.Table, model_age_ms: int | None = None) -> None:
        """Append the rows of one batch (or of every batch of a table), with their model age."""
        if self._file is None:
            raise ValueError(f"PredictionWriter({self.path}) is closed")
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        for b in batches:
            b = _conform(b, model_age_ms)
            if not b.num_rows:
                continue
            if self._csv is not None:
                self._csv.write_batch(b)
            else:
                self._file.write(_jsonl(b))
            self.rows += b.num_rows

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._file is None:
            return
        if self._csv is not None:
            self._csv.close()
        self._file.close()
        self._file = self._csv = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_predictions(
    path: str | Path | Iterable[str | Path], format: Literal["csv", "jsonl"] | None = None,
    freshness: bool = False,
) -> pa.Table:
    """Read one predictions file, or several (e.g. parts) concatenated, as a PREDICTION_SCHEMA table
    (``freshness``: a :data:`FILE_SCHEMA` table, with ``model_age_ms``; null in older files).

    The format follows the suffix (``.jsonl``/``.json``/``.ndjson`` → JSON lines, else CSV)
    unless ``format`` is given.
    """
    schema = FILE_SCHEMA if freshness else PREDICTION_SCHEMA
    if not isinstance(path, (str, Path)):
        tables = [read_predictions(p, format, freshness) for p in path]
        return pa.concat_tables(tables) if tables else schema.empty_table()
    path = Path(path)
    fmt = format or ("jsonl" if path.suffix.lower() in JSON_SUFFIXES else "csv")
    if path.stat().st_size == 0:
        return schema.empty_table()
    if fmt == "csv":
        types = {f.name: f.type for f in schema}
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=schema.names, include_missing_columns=True))
    else:
        opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        table = pajson.read_json(path, parse_options=opts)
    return table.select(schema.names).cast(schema)
