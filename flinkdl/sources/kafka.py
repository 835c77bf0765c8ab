"""Kafka input: Flink's Kafka table source (offsets in Flink checkpoints) and message decoding.

Row messages (``csv``/``json``, one event per message) are grouped in the JVM: the topic is read
with the ``raw`` format and a processing-time ``TUMBLE`` window collects the messages of each
``batch_ms`` (``ARRAY_AGG``) into one element, so one Python crossing carries thousands of events.
A newline inside a message is replaced by a space first, so one message is always one line (a
CSV message holding two rows becomes one bad row). ``arrow`` messages (one Arrow IPC stream with
one RecordBatch of many events) cross one per element as ``BYTES``.

Decoding never fails the job on bad input: unparseable JSON → ``malformed``, a message that is
not an Arrow stream → ``corrupt_arrow`` (``raw`` = base64 of the message), invalid UTF-8 in a row
message → ``undecodable`` (Flink decodes it with U+FFFD replacements).

>>> batch, dead = parse_json('{"label": 1, "n": 2}\\n{"label": 0\\n{"n": 5, "label": 0}', ["label", "n"], 10)
>>> batch.to_pydict()
{'label': [1, 0], 'n': [2, 5], '__position__': [10, 12]}
>>> [(d.reason, d.raw, d.position) for d in dead]
[('malformed', '{"label": 0', 11)]
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from flinkdl.config.schema import DirectoryConfig, FeatureConfig, KafkaSourceConfig
from flinkdl.features.deadletter import CORRUPT_ARROW, MALFORMED, DeadLetter
from flinkdl.features.parse import POSITION_COLUMN, parse_text

_STARTUP = {"committed": "group-offsets", "earliest": "earliest-offset", "latest": "latest-offset"}


def needed_columns(features: FeatureConfig) -> list[str]:
    """The raw columns the featurizer reads."""
    cols = [features.label.column, *(c.name for c in features.categorical), *(n.name for n in features.numeric)]
    if features.event_id is not None:
        cols.insert(0, features.event_id)
    return list(dict.fromkeys(cols))


def table_ddl(k: KafkaSourceConfig, table: str = "kafka_in") -> str:
    """``CREATE TEMPORARY TABLE`` for the topic: one column ``msg`` (STRING, or BYTES for arrow)."""
    col = "BYTES" if k.format == "arrow" else "STRING"
    opts = {
        "connector": "kafka", "topic": k.topic, "properties.bootstrap.servers": k.bootstrap_servers,
        "properties.group.id": k.group_id, "scan.startup.mode": _STARTUP[k.starting_offsets],
        "properties.auto.offset.reset": "earliest", "format": "raw",
        **{f"properties.{key}": v for key, v in k.properties.items()},
    }
    with_ = ",\n  ".join(f"'{key}' = '{str(v).replace(chr(39), chr(39) * 2)}'" for key, v in opts.items())
    return f"CREATE TEMPORARY TABLE {table} (msg {col}, pt AS PROCTIME()) WITH (\n  {with_})"


def kafka_stream(env, k: KafkaSourceConfig):
    """A DataStream of ``Row(messages, n)`` (csv/json: a list of strings) or ``Row(message_bytes)`` (arrow)."""
    from pyflink.table import StreamTableEnvironment

    tenv = StreamTableEnvironment.create(env)
    tenv.execute_sql(table_ddl(k))
    if k.format == "arrow":
        return tenv.to_data_stream(tenv.sql_query("SELECT msg FROM kafka_in WHERE msg IS NOT NULL"))
    # ARRAY_AGG, not LISTAGG: LISTAGG re-copies the whole string on every row (quadratic), which
    # capped a window at ~500 CSV messages (2.7k ev/s); ARRAY_AGG appends.
    chunks = tenv.sql_query(f"""
        SELECT ARRAY_AGG(REPLACE(msg, '\n', ' ')) AS msgs, COUNT(*) AS n FROM kafka_in WHERE msg IS NOT NULL
        GROUP BY TUMBLE(pt, INTERVAL '{k.batch_ms / 1000:.3f}' SECOND)""")
    return tenv.to_data_stream(chunks)


def parse_csv(text: str, k: KafkaSourceConfig, features: FeatureConfig,
              first_position: int) -> tuple[pa.RecordBatch, list[DeadLetter]]:
    """CSV messages (one per line) → string columns + dead letters (see :func:`parse_text`)."""
    d = DirectoryConfig(path=".", format="csv", columns=k.columns or [])
    return parse_text(text, d, features, first_position)


def _with_columns(table: pa.Table, columns: list[str], positions: np.ndarray) -> pa.RecordBatch:
    arrays, names = [], []
    for c in columns:
        col = table.column(c).combine_chunks() if c in table.column_names else pa.nulls(table.num_rows)
        arrays.append(col)
        names.append(c)
    arrays.append(pa.array(positions, pa.int64()))
    return pa.RecordBatch.from_arrays(arrays, names=[*names, POSITION_COLUMN])


def _read_json(data: bytes) -> pa.Table:
    return pjson.read_json(pa.BufferReader(data), read_options=pjson.ReadOptions(
        use_threads=False, block_size=max(1 << 20, len(data) + 1)))


def parse_json(text: str, columns: list[str], first_position: int) -> tuple[pa.RecordBatch, list[DeadLetter]]:
    """JSON messages (one object per line) → the ``columns`` (types as inferred) + dead letters.

    One ``pyarrow.json`` call for the whole chunk; only when it fails (or a line is blank) is the
    chunk checked line by line (``json.loads``) and the good lines read again.
    """
    lines = text.split("\n")
    data = text.encode("utf-8", "replace")
    try:
        table = _read_json(data)
        if table.num_rows == len(lines):
            return _with_columns(table, columns, np.arange(first_position, first_position + len(lines))), []
    except pa.ArrowInvalid:
        pass
    good, good_pos, dead = [], [], []
    for i, line in enumerate(lines):
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if ok:
            good.append(line)
            good_pos.append(first_position + i)
        else:
            dead.append(DeadLetter(MALFORMED, value="not one JSON object", raw=line, position=first_position + i))
    if not good:
        return empty_batch(columns), dead
    try:
        table = _read_json("\n".join(good).encode("utf-8", "replace"))
    except pa.ArrowInvalid:  # types differ between rows: every value as a string
        rows = [json.loads(x) for x in good]
        table = pa.table({c: pa.array([None if (v := r.get(c)) is None else str(v) for r in rows], pa.string())
                          for c in columns})
    return _with_columns(table, columns, np.asarray(good_pos, np.int64)), dead


def empty_batch(columns: list[str]) -> pa.RecordBatch:
    """No rows, the ``columns`` as strings (what a chunk of only bad messages leaves)."""
    return _with_columns(pa.table({c: pa.array([], pa.string()) for c in columns}), columns, np.zeros(0, np.int64))


def parse_arrow(data: bytes, columns: list[str], first_position: int) -> tuple[pa.RecordBatch, list[DeadLetter]]:
    """One Arrow IPC stream message → its batch (with positions); a message that does not read,
    or lacks one of ``columns``, is one dead letter (``raw`` = base64 of the message)."""
    def bad(reason: str, why: str) -> tuple[pa.RecordBatch, list[DeadLetter]]:
        raw = base64.b64encode(data).decode()
        return empty_batch(columns), [DeadLetter(reason, value=why[:200], raw=raw, position=first_position)]

    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, ValueError) as e:
        return bad(CORRUPT_ARROW, str(e))
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        return bad(MALFORMED, f"missing columns {missing}")
    table = table.combine_chunks()
    pos = pa.array(np.arange(first_position, first_position + table.num_rows), pa.int64())
    cols = [table.column(i).combine_chunks() if table.column(i).num_chunks else pa.array([], table.schema[i].type)
            for i in range(table.num_columns)]
    return pa.RecordBatch.from_arrays([*cols, pos], names=[*table.column_names, POSITION_COLUMN]), []
