"""Kafka message values → a raw Arrow batch (with :data:`POSITION_COLUMN`) + dead letters and notices.

Row formats (``csv``/``json``, one event per message) arrive as a chunk of ``bytes`` values;
``arrow`` as one IPC stream per message. Nothing here raises on bad input; every message or
event that cannot be used becomes one :class:`DeadLetter` (position = its index in the stream):

- ``empty``: an empty message, one of at most 16 blanks, or a null value (tombstone: Flink gives ``b""``).
- ``undecodable``: a row message that is not UTF-8 (``raw`` = base64 of its bytes).
- ``malformed``: a JSON message that does not parse or is not one object.
- ``wrong_type``: a JSON object or array as the value of a configured column (a multi-valued field
  takes an array of scalars).
- ``corrupt_arrow`` (any Arrow error, or a stream that fails full validation) / ``missing_column`` /
  ``wrong_type``: a whole Arrow message that does not read, lacks a configured column, or has a
  nested/binary configured column (``raw`` = base64).
- csv lines go through :func:`~flinkdl.features.parse.parse_bytes` (``field_count``; ``malformed``: a quote that does
  not close within its message).

Schema drift: a JSON key or Arrow column the job does not know is ignored; each such column
gives one :class:`Notice` per chunk (``schema_drift``, with how many rows carried it).

>>> d = MessageDecoder("json", ["label", "n"], {"label", "n"})
>>> batch, dead = d.rows([b'{"label": 1, "n": 2}', b'{"label": 0', b"", b'{"n": 5, "label": 0, "new": 1}'], 10)
>>> batch.to_pydict()
{'label': [1, 0], 'n': [2, 5], '__position__': [10, 13]}
>>> [(d.reason, d.position) for d in dead if hasattr(d, "reason")]
[('malformed', 11), ('empty', 12)]
>>> [(x.kind, x.field, x.rows) for x in dead if not hasattr(x, "reason")]
[('schema_drift', 'new', 1)]
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from flinkdl.config.base import section
from flinkdl.config.schema import DirectoryConfig, FeatureConfig
from flinkdl.features import deadletter as dl
from flinkdl.features.deadletter import DeadLetter, Notice
from flinkdl.features.parse import POSITION_COLUMN, parse_bytes

Letters = list[DeadLetter | Notice]
_SHORT = 16  # only a chunk with a message this short is searched for blank ones (a C-level min first)
_SCALAR = (pa.types.is_null, pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating,
           pa.types.is_decimal, pa.types.is_string, pa.types.is_large_string)


def _scalar(t: pa.DataType) -> bool:
    return any(p(t) for p in _SCALAR)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _with_columns(table: pa.Table, columns: list[str], positions: np.ndarray) -> pa.RecordBatch:
    """``columns`` of ``table`` (absent ones all null) + the position column."""
    arrays = [table.column(c).combine_chunks() if c in table.column_names else pa.nulls(table.num_rows)
              for c in columns]
    arrays.append(pa.array(positions, pa.int64()))
    return pa.RecordBatch.from_arrays(arrays, names=[*columns, POSITION_COLUMN])


def empty_batch(columns: list[str]) -> pa.RecordBatch:
    """No rows, the ``columns`` as strings (what a chunk of only bad messages leaves)."""
    return _with_columns(pa.table({c: pa.array([], pa.string()) for c in columns}), columns, np.zeros(0, np.int64))


class MessageDecoder:
    """Decodes messages of one ``fmt`` for featurizer columns ``columns``; ``known`` = every column
    the job reads (the rest are schema drift); ``features``/``csv_columns`` for csv."""

    def __init__(self, fmt: str, columns: list[str], known: set[str], features: FeatureConfig | None = None,
                 csv_columns: list[str] | None = None) -> None:
        self.fmt, self.columns, self.known = fmt, columns, known
        self.features = features
        self.csv = DirectoryConfig(path=".", format="csv", columns=csv_columns) if csv_columns else None
        f = features
        self._int_columns = [] if f is None else [
            *([f.event_id] if f.event_id else []), *(c.name for c in f.singles if c.type == "int")]
        #: multi-valued fields: a list (of scalars) is their value, not a wrong type
        self._lists = {} if f is None else {c.name: c.multi.sep for c in f.bags if c.multi is not None}

    # ------------------------------------------------------------------ row formats

    def rows(self, msgs: list[bytes], first_position: int) -> tuple[pa.RecordBatch, Letters]:
        """A chunk of csv/json message values → raw batch + letters (positions ``first_position + i``)."""
        dead: Letters = []
        kept = np.arange(len(msgs), dtype=np.int64)
        data = b"\n".join(msgs)
        if b"\r" in data or data.count(b"\n") != len(msgs) - 1:  # one message must stay one line
            msgs = [m.replace(b"\r", b" ").replace(b"\n", b" ") for m in msgs]
            data = b"\n".join(msgs)
        if msgs and min(map(len, msgs)) <= _SHORT and any(not m.strip() for m in msgs):
            blank = [not m.strip() for m in msgs]
            dead += [DeadLetter(dl.EMPTY, value="empty message", position=first_position + i)
                     for i, b in enumerate(blank) if b]
            kept = kept[~np.asarray(blank)]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            kept, bad = self._undecodable(msgs, kept, first_position)
            dead += bad
        if len(kept) != len(msgs):
            data = b"\n".join(msgs[i] for i in kept)
        more: Letters
        if not len(kept):
            batch, more = empty_batch(self.columns), []
        elif self.fmt == "csv":
            batch, parsed = parse_bytes(data, section(self.csv, "source.kafka.columns"),
                                        section(self.features, "features"))
            more = list(parsed)
        else:
            batch, more = self._json(data.decode("utf-8").split("\n"))
        return self._remap(batch, more, kept, first_position, dead)

    @staticmethod
    def _undecodable(msgs: list[bytes], kept: np.ndarray, first_position: int) -> tuple[np.ndarray, Letters]:
        good: list[int] = []
        dead: Letters = []
        for i in kept.tolist():
            try:
                msgs[i].decode("utf-8")
                good.append(i)
            except UnicodeDecodeError as e:
                why = f"byte 0x{msgs[i][e.start]:02x} at {e.start}: {e.reason}"
                dead.append(DeadLetter(dl.UNDECODABLE, value=why, raw=_b64(msgs[i]), raw_encoding="base64",
                                       position=first_position + i))
        return np.asarray(good, dtype=np.int64), dead

    @staticmethod
    def _remap(batch: pa.RecordBatch, more: Letters, kept: np.ndarray, first_position: int,
               dead: Letters) -> tuple[pa.RecordBatch, Letters]:
        """Positions of the parsed (kept) lines → positions in the chunk; letters sorted by position."""
        pos = batch.column(POSITION_COLUMN).to_numpy(zero_copy_only=False)
        batch = batch.set_column(batch.num_columns - 1, POSITION_COLUMN, pa.array(kept[pos] + first_position))
        for d in more:
            if d.position is not None:
                d.position = int(kept[d.position]) + first_position
        letters = dead + more
        letters.sort(key=lambda d: -1 if d.position is None else d.position)
        return batch, letters

    def _json(self, lines: list[str]) -> tuple[pa.RecordBatch, Letters]:
        """JSON lines → the columns + letters; positions = line index. One ``pyarrow.json`` call when
        the chunk is clean; else line by line (``json.loads``) and the good lines read again."""
        table = self._read_json(lines)
        if table is not None and table.num_rows == len(lines):
            return _with_columns(table, self.columns, np.arange(len(lines))), self._drift(table, 0)
        good: list[str] = []
        objs: list[dict] = []
        pos: list[int] = []
        dead: Letters = []
        for i, line in enumerate(lines):
            try:
                obj = json.loads(line)
            except ValueError as e:
                dead.append(DeadLetter(dl.MALFORMED, value=f"not JSON: {e}", raw=line, position=i))
                continue
            if not isinstance(obj, dict):
                dead.append(DeadLetter(dl.MALFORMED, value=f"a JSON {type(obj).__name__}, not an object",
                                       raw=line, position=i))
                continue
            nested = next((c for c in self.columns if not self._fits(c, obj.get(c))), None)
            if nested is not None:
                dead.append(DeadLetter(dl.WRONG_TYPE, field=nested, value=json.dumps(obj[nested]), raw=line,
                                       position=i))
                continue
            good.append(line)
            objs.append(obj)
            pos.append(i)
        if not good:
            return empty_batch(self.columns), dead
        table = self._read_json(good)
        if table is None:  # types differ between rows: every value as text
            table = pa.table({c: self._as_text(c, [o.get(c) for o in objs]) for c in self.columns})
            dead += self._drift_objs(objs, pos)
        else:
            dead += self._drift(table, pos[0])
        return _with_columns(table, self.columns, np.asarray(pos, np.int64)), dead

    def _fits(self, column: str, v: object) -> bool:
        """A JSON value a column takes: a scalar, or for a multi-valued field a list of scalars."""
        if isinstance(v, list) and column in self._lists:
            return not any(isinstance(x, (dict, list)) for x in v)
        return not isinstance(v, (dict, list))

    def _scalar_or_list(self, column: str, t: pa.DataType) -> bool:
        if column in self._lists and (pa.types.is_list(t) or pa.types.is_large_list(t)):
            return _scalar(t.value_type)
        return _scalar(t)

    def _as_text(self, column: str, values: list) -> pa.Array:
        """Values of mixed JSON types as text (a multi-valued field's: lists of text)."""
        if column not in self._lists:
            return pa.array([_text(v) for v in values], pa.string())
        sep = self._lists[column]

        def items(v: object) -> list | None:
            if v is None or isinstance(v, list):
                return v if v is None else [_text(x) for x in v]
            text = _text(v)
            return text.split(sep) if text else []

        return pa.array([items(v) for v in values], pa.list_(pa.string()))

    def _read_json(self, lines: list[str]) -> pa.Table | None:
        """One ``pyarrow.json`` read; None if it fails or infers a non-scalar type for a configured column."""
        data = "\n".join(lines).encode("utf-8")
        try:
            table = pjson.read_json(pa.BufferReader(data), read_options=pjson.ReadOptions(
                use_threads=False, block_size=max(1 << 20, len(data) + 1)))
        except pa.ArrowInvalid:
            return None
        fields = [table.schema.field(c) for c in self.columns if c in table.column_names]
        if any(not self._scalar_or_list(f.name, f.type) for f in fields):
            return None
        if any(pa.types.is_floating(table.schema.field(c).type) for c in self._int_columns if c in table.column_names):
            return None  # an int beyond int64 made the column float: other rows' ids would lose digits
        return table

    def _drift(self, table: pa.Table, position: int) -> Letters:
        return [Notice(dl.SCHEMA_DRIFT, c, table.num_rows - table.column(c).null_count, position)
                for c in table.column_names if c not in self.known]

    def _drift_objs(self, objs: list[dict], pos: list[int]) -> Letters:
        counts: dict[str, int] = {}
        for o in objs:
            for key in o.keys() - self.known:
                counts[key] = counts.get(key, 0) + 1
        return [Notice(dl.SCHEMA_DRIFT, c, k, pos[0]) for c, k in counts.items()]

    # ------------------------------------------------------------------ arrow

    def arrow(self, data: bytes | None, first_position: int) -> tuple[pa.RecordBatch, Letters]:
        """One Arrow IPC stream message → its batch (with positions) + notices; a message that is
        empty, does not read, or has a configured column missing (other than the label: its events are
        unlabelled) or nested is one dead letter."""
        def bad(reason: str, why: str, field: str | None = None) -> tuple[pa.RecordBatch, Letters]:
            return empty_batch(self.columns), [DeadLetter(reason, field, why, _b64(data or b""), first_position,
                                                          raw_encoding="base64")]

        if not data:
            return bad(dl.EMPTY, "empty message")
        try:
            reader = pa.ipc.open_stream(pa.py_buffer(data))
            batches = list(reader)
            if not batches:  # a stream cut after its schema reads as no rows: its events would vanish
                return bad(dl.CORRUPT_ARROW, "no record batch (cut-off stream)")
            table = pa.Table.from_batches(batches, reader.schema)
            table.validate(full=True)  # corrupt offsets or lengths would read out of bounds later
            table.column_names  # noqa: B018 - a name that is not UTF-8 raises here (UnicodeDecodeError)
        except (pa.ArrowException, OSError, ValueError) as e:  # any Arrow error: NotImplemented too
            return bad(dl.CORRUPT_ARROW, str(e))
        label = self.features.label.column if self.features is not None else None
        if label in self.columns and label not in table.column_names:  # unlabelled events: scored
            table = table.append_column(label, pa.nulls(table.num_rows, pa.float64()))
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            return bad(dl.MISSING_COLUMN, f"missing columns {missing}", missing[0])
        nested = [c for c in self.columns if not self._scalar_or_list(c, table.schema.field(c).type)]
        if nested:
            return bad(dl.WRONG_TYPE, f"column type {table.schema.field(nested[0]).type}", nested[0])
        notices = self._drift(table, first_position)
        if POSITION_COLUMN in table.column_names:
            table = table.drop_columns([POSITION_COLUMN])
        table = table.combine_chunks()
        cols = [table.column(i).combine_chunks() if table.column(i).num_chunks else pa.array([], table.schema[i].type)
                for i in range(table.num_columns)]
        pos = pa.array(np.arange(first_position, first_position + table.num_rows), pa.int64())
        return pa.RecordBatch.from_arrays([*cols, pos], names=[*table.column_names, POSITION_COLUMN]), notices


def _text(v: object) -> str | None:
    """A JSON value as text for the string fallback: strings as they are, others as JSON (``NaN``, ``true``)."""
    return v if v is None or isinstance(v, str) else json.dumps(v)
