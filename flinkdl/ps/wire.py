"""Arrow layouts shared by the Flight server, its client and the checkpoint files.

Rows travel as ``(id int64, row fixed_size_list<float32>[width])`` record batches (plus an optional
``init`` column on push: the value a row starts from when the push creates it). Dense variables
travel as ``(name, shape, value)``. Both convert to and from numpy without per-row Python.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def rows_schema(width: int, with_init: bool = False) -> pa.Schema:
    fields = [pa.field("id", pa.int64(), False), pa.field("row", pa.list_(pa.float32(), width), False)]
    if with_init:
        fields.append(pa.field("init", pa.list_(pa.float32(), width), False))
    return pa.schema(fields)


def _fixed(rows: np.ndarray, width: int) -> pa.Array:
    flat = np.ascontiguousarray(rows, np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)  # no type=: that path copies slowly


def rows_batch(ids: np.ndarray, rows: np.ndarray, init: np.ndarray | None = None) -> pa.RecordBatch:
    """``ids [n]`` and ``rows [n, width]`` (and ``init [n, width]``) as one record batch."""
    width = rows.shape[1]
    cols = [pa.array(np.ascontiguousarray(ids, np.int64)), _fixed(rows, width)]
    if init is not None:
        cols.append(_fixed(init, width))
    return pa.record_batch(cols, schema=rows_schema(width, init is not None))


def batch_rows(batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Inverse of :func:`rows_batch` (a table is combined first)."""
    if isinstance(batch, pa.Table):
        if not batch.num_rows:
            batch = pa.RecordBatch.from_pylist([], schema=batch.schema)
        else:
            batch = batch.combine_chunks().to_batches()[0]
    if batch.schema.names[:2] != ["id", "row"] or not pa.types.is_fixed_size_list(batch.schema.field(1).type):
        raise ValueError(f"expected columns (id int64, row fixed_size_list<float32>), got {batch.schema}")
    width = batch.schema.field(1).type.list_size
    ids = batch.column(0).to_numpy()
    rows = batch.column(1).flatten().to_numpy().reshape(-1, width)
    has_init = "init" in batch.schema.names
    init = batch.column("init").flatten().to_numpy().reshape(-1, width) if has_init else None
    return ids, rows, init


DENSE_SCHEMA = pa.schema([("name", pa.string()), ("shape", pa.list_(pa.int64())), ("value", pa.list_(pa.float32()))])


def _flat(items: dict[str, np.ndarray], names: list[str]) -> pa.Array:
    return pa.array([np.asarray(items[n], np.float32).ravel() for n in names], pa.list_(pa.float32()))


def dense_table(items: dict[str, np.ndarray], init: dict[str, np.ndarray] | None = None) -> pa.Table:
    """Dense variables (and optionally the values they start from if absent) as a table."""
    names = sorted(items)
    cols = [pa.array(names, pa.string()), pa.array([list(np.shape(items[n])) for n in names], pa.list_(pa.int64())),
            _flat(items, names)]
    schema = DENSE_SCHEMA
    if init is not None:
        cols.append(_flat(init, names))
        schema = schema.append(pa.field("init", pa.list_(pa.float32())))
    return pa.table(cols, schema=schema)


def dense_items(table: pa.Table, column: str = "value") -> dict[str, np.ndarray]:
    out = {}
    for name, shape, value in zip(table.column("name").to_pylist(), table.column("shape").to_pylist(),
                                  table.column(column).to_numpy(zero_copy_only=False), strict=True):
        out[name] = np.asarray(value, np.float32).reshape(shape)
    return out


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """Shard of each id: splitmix64 finaliser of the id, modulo ``shards`` (uniform for any ids).

    >>> shard_of(np.arange(6), 2).tolist()
    [0, 1, 0, 0, 0, 0]
    """
    if shards == 1:
        return np.zeros(len(ids), np.int64)
    z = np.asarray(ids, np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
