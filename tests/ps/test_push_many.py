"""A push request's parts (ParameterService.push_many) give the same rows, bit for bit, as pushing them
one request at a time; the table index finds every id after many inserts."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.ps.service import ParameterService


def _parts(rng: np.random.Generator, with_init: list[bool]) -> list:
    out = []
    for has_init in with_init:
        ids = np.sort(rng.choice(50, 20, replace=False)).astype(np.int64)  # parts overlap each other
        rows = rng.standard_normal((20, 4)).astype(np.float32)
        out.append((ids, rows, rng.standard_normal((20, 4)).astype(np.float32) if has_init else None))
    return out


@pytest.mark.parametrize("assign", [False, True])
@pytest.mark.parametrize("with_init", [[False, False, False], [True, True], [True, False, True]])
def test_push_many_equals_part_after_part(assign: bool, with_init: list[bool]) -> None:
    rng = np.random.default_rng(7)
    first = _parts(rng, [False])
    parts = _parts(rng, with_init)
    whole, one_by_one = ParameterService(), ParameterService()
    for svc in (whole, one_by_one):
        svc.create_table("emb", 2, ["acc"])
        svc.push_many("emb", 0, first)
    whole.push_many("emb", 0, parts, assign=assign)
    for part in parts:
        one_by_one.push_many("emb", 0, [part], assign=assign)
    a, b = whole.table("emb").all_rows(), one_by_one.table("emb").all_rows()
    order_a, order_b = np.argsort(a[0]), np.argsort(b[0])
    np.testing.assert_array_equal(a[0][order_a], b[0][order_b])
    assert a[1][order_a].tobytes() == b[1][order_b].tobytes()


def test_table_index_after_many_inserts() -> None:
    """Ids inserted in many pushes (the recent index merged into the main one on the way) are all found."""
    from flinkdl.ps.store import Table

    rng = np.random.default_rng(3)
    t = Table("emb", dim=1)
    value: dict[int, float] = {}
    for _ in range(12):
        ids = rng.integers(-1000, 2_000_000, 30_000).astype(np.int64)
        rows = rng.standard_normal((len(ids), 1)).astype(np.float32)
        t.push(ids, rows, assign=True)
        value.update(zip(ids.tolist(), rows[:, 0].tolist(), strict=True))  # the last of duplicates wins
    keys = np.array(sorted(value), np.int64)
    rows, exists = t.pull(keys)
    assert exists.all() and t.size == len(keys)
    np.testing.assert_array_equal(rows[:, 0], np.array([value[k] for k in keys.tolist()], np.float32))
    assert not t.pull(np.array([2_000_001, -1001]))[1].any()
