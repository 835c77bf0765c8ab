"""MurmurHash3 helpers equal the reference ``mmh3`` package bit for bit."""

from __future__ import annotations

import mmh3
import numpy as np
import pyarrow as pa
import pytest

from flinkdl.features import hashing
from flinkdl.features.hashing import (
    bucketize,
    cross,
    field_seed,
    hash_strings,
    murmur3_32_int64,
    null_hash,
)

EDGE = [0, 1, -1, 2, -2, 255, 256, 2**31 - 1, 2**31, -(2**31), 2**32 - 1, 2**32, 2**63 - 1, -(2**63)]
SEEDS = [0, 1, 7, 42, 0x9747B28C, 2**31 - 1, 2**31, 2**32 - 1]


def ref_int(v: int, seed: int) -> int:
    return mmh3.hash(int(v).to_bytes(8, "little", signed=True), seed, signed=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_int64_matches_mmh3(seed: int) -> None:
    rng = np.random.default_rng(seed % 1000)
    values = np.concatenate(
        [
            np.array(EDGE, dtype=np.int64),
            rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64, endpoint=True),
        ]
    )
    got = murmur3_32_int64(values, seed)
    assert got.dtype == np.uint32
    assert got.tolist() == [ref_int(v, seed) for v in values.tolist()]


def test_int64_seed_taken_mod_2_32() -> None:
    v = np.array(EDGE, dtype=np.int64)
    assert murmur3_32_int64(v, -1).tolist() == murmur3_32_int64(v, 2**32 - 1).tolist()
    assert murmur3_32_int64(v, 2**32 + 5).tolist() == murmur3_32_int64(v, 5).tolist()


def test_int64_per_row_seeds_broadcast() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(-(10**12), 10**12, (5, 64))
    seeds = np.array([field_seed(3, f"C{i}") for i in range(5)], dtype=np.uint32)
    block = murmur3_32_int64(values, seeds[:, None])
    for i in range(5):
        assert block[i].tolist() == murmur3_32_int64(values[i], int(seeds[i])).tolist()
    assert murmur3_32_int64(values[0, ::3], 9).tolist() == [ref_int(v, 9) for v in values[0, ::3]]  # strided


def test_strings_match_mmh3_per_value() -> None:
    values = ["68fd1e64", "", "ü€😀", "a", "68fd1e64", None, "a", "x" * 100]
    for seed in (0, 11, 2**32 - 1):
        got = hash_strings(pa.array(values), seed)
        want = [null_hash(seed) if v is None else mmh3.hash(v.encode(), seed, signed=False) for v in values]
        assert got.dtype == np.uint32 and got.tolist() == want
    assert null_hash(11) == mmh3.hash(b"", 11, signed=False)  # null and "" share the reserved id


def test_strings_hash_only_distinct_values(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = mmh3.hash

    def counting(key: str | bytes, seed: int = 0, signed: bool = True) -> int:
        calls.append(key)
        return real(key, seed, signed)

    monkeypatch.setattr(hashing.mmh3, "hash", counting)
    arr = pa.chunked_array([["a", "b", None] * 1000, ["b", "c"] * 500])
    got = hash_strings(arr, 5)
    assert sorted(c for c in calls if c) == ["a", "b", "c"] and len(got) == 4000


def test_strings_from_ints_hash_their_text() -> None:
    got = hash_strings(pa.array([123, None, -4]), 2)
    assert got.tolist() == [mmh3.hash("123", 2, signed=False), null_hash(2), mmh3.hash("-4", 2, signed=False)]


def test_field_seed_and_cross() -> None:
    assert field_seed(0, "C1") == mmh3.hash("C1", 0, signed=False)
    assert field_seed(1, "C1") != field_seed(0, "C1") != field_seed(0, "C2")
    a = np.array([0, 1, 2**32 - 1, 12345], dtype=np.uint32)
    b = np.array([2**32 - 1, 0, 2**32 - 1, 777], dtype=np.uint32)
    s = field_seed(0, "C1#C2")
    want = [
        ref_int(int(x) | int(y) << 32 if int(y) < 2**31 else (int(x) | int(y) << 32) - 2**64, s)
        for x, y in zip(a, b, strict=True)
    ]
    assert cross(a, b, s).tolist() == want
    assert cross(a, b, s).tolist() != cross(b, a, s).tolist()  # ordered pair


def test_bucketize() -> None:
    h = np.array([0, 1, 255, 256, 2**32 - 1], dtype=np.uint32)
    assert bucketize(h, 8).tolist() == [0, 1, 255, 0, 255]
    assert bucketize(h, 31).dtype == np.int64
    assert bucketize(h, 31).tolist() == [x % 2**31 for x in h.tolist()]
