"""A multi-valued ID field's column → ``max_len`` hashed id columns (padded with ``PAD``), vectorised.

The value is a string split on ``multi.sep`` or an Arrow list (JSON arrays arrive as lists). Each
id hashes as a single-valued field's would (``int``: the int64 value, ``string``: its UTF-8
bytes), with the field's seed; the first ``max_len`` ids are kept. A missing value, ``""`` or an
empty list is the field's missing id (one id: :func:`~flinkdl.features.hashing.null_hash`). A
row with an empty item (``"a||b"``), a null or nested item, or (``int``) an item that is not an
integer is rejected (``bad_list``).

>>> import pyarrow as pa
>>> from flinkdl.config.multi_valued import MultiValued
>>> ids, bad = bag_ids(pa.array(["a|b|c", None, "a||b", "c"]), MultiValued(max_len=2), False, seed=1, bits=4)
>>> ids.T.tolist(), bad  # per row: the first 2 ids (a = 8, b = 7, c = 11); None: the missing id (7)
([[8, 7], [7, -1], [8, 7], [11, -1]], [(2, "empty item in 'a||b'")])
>>> ids, bad = bag_ids(pa.array([[1, 2], [], [3, None]], pa.list_(pa.int64())), MultiValued(), True, seed=1, bits=4)
>>> ids[:2].T.tolist(), bad
([[5, 12], [7, -1], [11, 13]], [(2, 'null item')])
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.config.multi_valued import MultiValued
from flinkdl.exchange.schema import PAD
from flinkdl.features.hashing import bucketize, hash_strings, murmur3_32_int64, null_hash


def _lists(arr: pa.Array, sep: str) -> pa.Array:
    if pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        return arr.cast(pa.list_(arr.type.value_type))
    if pa.types.is_list(arr.type):
        return arr
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.list_(pa.string()))
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return pc.split_pattern(arr, sep)


def bag_ids(arr: pa.Array, multi: MultiValued, is_int: bool, seed: int,
            bits: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """``[max_len, n]`` int64 bucket ids (``PAD`` where unused) and the rejected rows ``(row, why)``."""
    n, lists = len(arr), _lists(arr, multi.sep)
    values = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    slot = np.arange(len(values), dtype=np.int64) - (np.cumsum(lengths) - lengths)[parent]
    bad: dict[int, str] = {}
    is_text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    if len(values) and not (is_text or pa.types.is_integer(values.type) or pa.types.is_null(values.type)):
        for r in np.unique(parent).tolist():  # nested lists, structs, floats: not ids
            bad[r] = f"items of type {values.type}"
        values, parent, slot, is_text = pa.array([], pa.int64()), parent[:0], slot[:0], False
    if is_text and len(values):
        blank = pc.equal(pc.binary_length(values), 0).fill_null(False).to_numpy(zero_copy_only=False)
        alone = blank & (lengths[parent] == 1)  # "" as the whole value: no ids, not an empty item
        for r in np.unique(parent[blank & ~alone]).tolist():
            bad[r] = f"empty item in {arr[r].as_py()!r}"[:200]
        keep = ~alone
        if not keep.all():
            lengths = lengths.copy()
            np.subtract.at(lengths, parent[alone], 1)
            values, parent, slot = values.filter(pa.array(keep)), parent[keep], slot[keep]
    if values.null_count:
        nulls = pc.is_null(values).to_numpy(zero_copy_only=False)
        for r in np.unique(parent[nulls]).tolist():
            bad.setdefault(r, "null item")
        values = values.fill_null("" if is_text else 0)
    h = _hash(values, parent, is_int, seed, bad)
    out = np.full((multi.max_len, n), PAD, dtype=np.int64)
    kept = slot < multi.max_len
    out[slot[kept], parent[kept]] = bucketize(h[kept], bits)
    out[0, lengths == 0] = bucketize(np.array([null_hash(seed)], np.uint32), bits)[0]
    return out, sorted(bad.items())


def _hash(values: pa.Array, parent: np.ndarray, is_int: bool, seed: int, bad: dict[int, str]) -> np.ndarray:
    if not is_int:
        return hash_strings(values, seed) if len(values) else np.zeros(0, np.uint32)
    try:
        ints = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = values.cast(pa.string()).to_pylist()
        ints = np.zeros(len(texts), np.int64)
        for i, t in enumerate(texts):
            try:
                ints[i] = int(t)
            except (TypeError, ValueError):
                bad.setdefault(int(parent[i]), f"item {t!r} is not an int"[:200])
    return murmur3_32_int64(ints, seed)
