"""A raw batch's columns as the featurizer reads them: cast with dead letters, text, zero-filled.

:class:`Rows` wraps one raw batch (typed columns or strings) for :mod:`flinkdl.features.transform`:
a column cast to a type marks the rows whose value does not parse (found by bisection, so a single
bad value costs ~2·log2(n) small casts), :meth:`Rows.reject` records a row's first problem, and
:meth:`Rows.render` gives a rejected row back as the delimited text a dead letter carries.

>>> import numpy as np, pyarrow as pa
>>> rows = Rows(pa.record_batch({"n": ["1", "x", ""]}), max_bytes=64)
>>> rows.cast("n", pa.float64(), "not_numeric").to_pylist()
[1.0, None, None]
>>> rows.rejects  # (row, reason, field, value): the blank is missing, not rejected
[(1, 'not_numeric', 'n', 'x')]
>>> zero_filled(pa.array([1.5, None]), np.array([False, True])).tolist()
[1.5, 0.0]
>>> null_mask(pa.array([1.0, None, 3.0]).slice(1)).tolist()
[True, False]
>>> arrow_view(np.array([1.5, 2.0]), valid_bits=np.packbits([True, False], bitorder="little")).to_pylist()
[1.5, None]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.features import deadletter as dl
from flinkdl.features.parse import POSITION_COLUMN

_FLOATISH = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _null_where(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    """``arr`` (a flat type) with the ``mask`` rows set to null, by a new validity bitmap.

    Not ``pc.if_else(mask, None, arr)``: on pyarrow 16 it corrupts sliced string arrays
    (apache/arrow#41479, fixed upstream in 2026 by apache/arrow#49443).
    """
    keep = ~mask
    if arr.null_count:
        keep &= arr.is_valid().to_numpy(zero_copy_only=False)
    bits = np.zeros(arr.offset + len(arr), dtype=bool)
    bits[arr.offset :] = keep
    validity = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(arr.type, len(arr), [validity, *arr.buffers()[1:]], offset=arr.offset)


def _offsets(arr: pa.Array) -> np.ndarray:
    width = 8 if pa.types.is_large_string(arr.type) else 4
    return np.frombuffer(arr.buffers()[1], dtype=f"<i{width}", count=len(arr) + 1, offset=arr.offset * width)


def _blank_to_null(arr: pa.Array) -> pa.Array:
    """``""`` → null; reads only the offsets buffer, so a column without blanks costs next to nothing."""
    off = _offsets(arr)
    blank = off[1:] == off[:-1]
    return _null_where(arr, blank) if blank.any() else arr


def _too_long(arr: pa.Array, limit: int) -> np.ndarray:
    """Rows of a string array whose value has more than ``limit`` bytes (one subtraction when none can)."""
    off = _offsets(arr)
    if len(arr) == 0 or off[-1] - off[0] <= limit:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.diff(off) > limit)


def _bad_rows(arr: pa.Array, to: pa.DataType, safe: bool) -> list[int]:
    """Indices of the values of ``arr`` that do not cast, found by bisection."""
    out: list[int] = []

    def search(a: pa.Array, start: int) -> None:
        try:
            pc.cast(a, to, safe=safe)
        except pa.ArrowInvalid:
            if len(a) == 1:
                out.append(start)
            else:
                mid = len(a) // 2
                search(a.slice(0, mid), start)
                search(a.slice(mid), start + mid)

    search(arr, 0)
    return out


def _id64(text: str) -> int | None:
    """A decimal integer in [-2^63, 2^64) as int64 bits, else None."""
    t = text.strip()
    if not t.lstrip("+-").isdigit() or not t.lstrip("+-").isascii():
        return None
    x = int(t)
    return x if -(1 << 63) <= x < (1 << 63) else x - (1 << 64) if 0 <= x < (1 << 64) else None


def zero_filled(arr: pa.Array, missing: np.ndarray) -> np.ndarray:
    """A float64 array's values with 0.0 where ``missing`` (its nulls): ``arr.fill_null(0)``, without
    Arrow's fill_null (which costs more than the rest of a column's featurizing)."""
    if not arr.null_count:
        return arr.to_numpy()
    data = arr.buffers()[1]
    if data is None:
        return np.zeros(len(arr))
    values = np.frombuffer(data, np.float64, count=len(arr), offset=arr.offset * 8)
    return np.where(missing, 0.0, values)


def null_mask(arr: pa.Array) -> np.ndarray:
    """Bool per value of ``arr``: null (``pc.is_null(arr)`` as numpy, read off the validity bitmap)."""
    valid = arr.buffers()[0] if arr.null_count else None
    if valid is None:
        return np.zeros(len(arr), bool) if arr.null_count == 0 else np.ones(len(arr), bool)  # all null: no bitmap
    bits = np.unpackbits(np.frombuffer(valid, np.uint8), count=arr.offset + len(arr), bitorder="little")
    return bits[arr.offset:] == 0


def arrow_view(x: np.ndarray, type: pa.DataType | None = None, valid_bits: np.ndarray | None = None) -> pa.Array:
    """An Arrow array over a 1-d numpy array (``valid_bits``: its validity bitmap, LSB first): zero-copy
    when ``x`` is contiguous and of ``type``'s numpy dtype (``Array.from_buffers``: less than half the
    time of ``pa.array``), else ``pa.array`` (which converts)."""
    dtype = pa.from_numpy_dtype(x.dtype)
    if x.ndim == 1 and x.flags.c_contiguous and (type is None or type == dtype):
        valid = None if valid_bits is None else pa.py_buffer(valid_bits)
        return pa.Array.from_buffers(dtype, len(x), [valid, pa.py_buffer(x)])
    if valid_bits is not None:
        raise ValueError("valid_bits needs a contiguous array of the type's dtype")
    return pa.array(x, type=type)


class Rows:
    """Per-call state: the raw batch, which rows were rejected, and why."""

    def __init__(self, raw: pa.RecordBatch | pa.Table, max_bytes: int) -> None:
        self.raw, self.max_bytes = raw, max_bytes
        self.bad = np.zeros(raw.num_rows, dtype=bool)
        self.rejects: list[tuple[int, str, str, str | None]] = []

    def column(self, name: str) -> pa.Array:
        try:
            col = self.raw.column(name)
        except KeyError:
            raise KeyError(f"raw batch has no column {name!r} (has {self.raw.schema.names})") from None
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col

    def text(self, name: str) -> pa.Array:
        """Column ``name``; string values over ``max_bytes`` are rejected (``field_too_long``) and nulled."""
        arr = self.column(name)
        if not _is_text(arr.type):
            return arr
        rows = _too_long(arr, self.max_bytes)
        if len(rows):
            sizes = np.diff(_offsets(arr))[rows]
            values = [f"{k} bytes: {arr[int(r)].as_py()[:100]}" for r, k in zip(rows, sizes, strict=True)]
            self.reject(rows, dl.FIELD_TOO_LONG, name, values)
            mask = np.zeros(len(arr), dtype=bool)
            mask[rows] = True
            arr = _null_where(arr, mask)
        return arr

    def cast(self, name: str, to: pa.DataType, reason: str) -> pa.Array:
        """Column ``name`` cast to ``to``; rows that do not cast are rejected and become null."""
        arr = self.text(name)
        if arr.type == to:
            return arr
        if _is_text(arr.type):
            arr = _blank_to_null(arr)
        # numbers → float: never fail on precision; float → int: fail on fractions
        safe = not (pa.types.is_floating(to) and any(p(arr.type) for p in _FLOATISH))
        try:
            return pc.cast(arr, to, safe=safe)
        except pa.ArrowInvalid:
            rows = _bad_rows(arr, to, safe)
        self.reject(np.asarray(rows, dtype=np.int64), reason, name, [str(arr[i].as_py()) for i in rows])
        mask = np.zeros(len(arr), dtype=bool)
        mask[rows] = True
        return pc.cast(_null_where(arr, mask), to, safe=safe)

    def id64(self, name: str, reason: str) -> pa.Array:
        """An id column as int64, unsigned 64-bit ids included: one above 2^63 − 1 (half of Avazu's ``id``
        column) becomes its two's-complement int64, which is distinct per id; values that are neither
        int64 nor uint64 are rejected as by :meth:`cast`.

        >>> Rows(pa.record_batch({"id": ["18446744073709551615", "-2", "x"]}), 64).id64("id", "bad_id").to_pylist()
        [-1, -2, None]
        """
        arr = self.text(name)
        if not (_is_text(arr.type) or pa.types.is_unsigned_integer(arr.type)):
            return self.cast(name, pa.int64(), reason)
        arr = _blank_to_null(arr) if _is_text(arr.type) else arr
        for to in (pa.int64(), pa.uint64()):
            try:
                return pc.cast(arr, to).view(pa.int64())
            except pa.ArrowInvalid:
                pass
        values = arr.to_pylist()  # both kinds, or a bad value, in one batch: row by row
        ids = [None if v is None else _id64(str(v)) for v in values]
        bad = [i for i, (v, x) in enumerate(zip(values, ids, strict=True)) if v is not None and x is None]
        self.reject(np.asarray(bad, np.int64), reason, name, [str(values[i]) for i in bad])
        return pa.array(ids, pa.int64())

    def reject(self, rows: np.ndarray, reason: str, field: str, values: Sequence[str | None] | None = None) -> None:
        """Record rows as rejected for ``reason`` unless already rejected for an earlier one."""
        if not len(rows):
            return
        if values is None:
            col = self.column(field)
            values = [None if (v := col[int(r)].as_py()) is None else str(v) for r in rows]
        for r, v in zip(rows.tolist(), values, strict=True):
            if not self.bad[r]:
                self.bad[r] = True
                self.rejects.append((r, reason, field, v))

    def render(self, row: int, delimiter: str) -> str:
        """Row ``row`` of the raw batch as one delimited line (null → empty)."""
        names = self.raw.schema.names
        values = (self.raw.column(i)[row].as_py() for i, n in enumerate(names) if n != POSITION_COLUMN)
        return delimiter.join("" if v is None else str(v) for v in values)
