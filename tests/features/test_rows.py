"""The raw batch's helpers: Arrow arrays over numpy columns, zero-copy where the types allow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flinkdl.features.rows import Rows, arrow_view, null_mask


@pytest.mark.parametrize("x", [np.arange(-3, 5, dtype=np.int64), np.array([0.5, np.nan, -0.0], np.float32),
                               np.array([1.0, 2.0], np.float64)])
def test_a_contiguous_column_of_the_type_is_shared_not_copied(x: np.ndarray) -> None:
    arr, want = arrow_view(x, pa.from_numpy_dtype(x.dtype)), pa.array(x)
    assert arr.type == want.type and arr.null_count == want.null_count == 0  # NaN stays a value, as with pa.array
    assert arr.to_numpy().tobytes() == want.to_numpy().tobytes() == x.tobytes()  # the same bits
    assert arr.buffers()[1].address == x.ctypes.data  # the numpy memory itself


def test_other_dtypes_and_strided_views_are_converted_as_pa_array_does() -> None:
    wide = np.arange(12, dtype=np.int64).reshape(3, 4)
    for x, t in ((np.arange(4, dtype=np.int32), pa.int64()), (wide[:, 1], pa.int64()), (wide.T[0], None)):
        assert arrow_view(x, t).equals(pa.array(x, type=t))


def test_validity_bits_make_nulls() -> None:
    x = np.array([1.5, 2.5, 3.5])
    arr = arrow_view(x, valid_bits=np.packbits([True, False, True], bitorder="little"))
    assert arr.to_pylist() == [1.5, None, 3.5]
    with pytest.raises(ValueError, match="valid_bits"):
        arrow_view(x[::2], valid_bits=np.packbits([True, True], bitorder="little"))


def test_null_mask_is_is_null_for_any_offset() -> None:
    rng = np.random.default_rng(0)
    arr = pa.array(rng.random(50), mask=rng.random(50) < 0.3)
    for a in (arr, arr.slice(3), arr.slice(9, 20), pa.array([1.0, 2.0]), pa.array([None, None], pa.float64()),
              pa.array([], pa.float64())):
        assert null_mask(a).tolist() == pc.is_null(a).to_numpy(zero_copy_only=False).tolist()


@pytest.mark.parametrize("values", [
    ["1", "9223372036854775807"],  # int64 only
    ["10000169349117863715", "18446744073709551615", ""],  # uint64 only (Avazu's ids), a blank
    ["-5", "10000169349117863715", " 7 ", "x", "18446744073709551616", "1.5"],  # both kinds and bad values
])
def test_id64_takes_signed_and_unsigned_64_bit_ids(values: list[str]) -> None:
    rows = Rows(pa.record_batch({"id": values}), max_bytes=64)
    got = rows.id64("id", "bad_id").to_pylist()
    want = [None if v.strip() in ("", "x", "1.5", "18446744073709551616") else
            np.array([int(v)], np.uint64 if int(v) >= 2**63 else np.int64).view(np.int64)[0].item() for v in values]
    assert got == want
    assert [(r, v) for r, _, _, v in rows.rejects] == [
        (i, v) for i, v in enumerate(values) if v in ("x", "1.5", "18446744073709551616")]
    assert len(set(filter(None, got))) == len(list(filter(None, got)))  # distinct ids stay distinct


def test_id64_of_typed_columns_is_cast() -> None:
    big = pa.array([2**64 - 1, 3], pa.uint64())
    assert Rows(pa.record_batch({"id": big}), 64).id64("id", "bad_id").to_pylist() == [-1, 3]
    rows = Rows(pa.record_batch({"id": pa.array([1.0, 2.5])}), 64)
    assert rows.id64("id", "bad_id").to_pylist() == [1, None] and rows.rejects == [(1, "bad_id", "id", "2.5")]
