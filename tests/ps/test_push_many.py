"""A push request's parts are applied as one (ParameterService.push_many): same rows, bit for bit,
as applying them part after part."""

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
