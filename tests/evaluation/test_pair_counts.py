"""The pair counts of the exact progressive AUC against brute force over every (positive, negative) pair."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.evaluation import pair_counts as pc


def events(rng: np.random.Generator, n: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, span, n).astype(np.uint32), rng.random(n) < 0.4


def counts(keys: np.ndarray, lab: np.ndarray) -> pc.Counts:
    return pc.counts_of(np.sort((keys.astype(np.uint64) << np.uint64(1)) | lab.astype(np.uint64)))


def brute(pos_keys: np.ndarray, neg_keys: np.ndarray) -> int:
    p, n = pos_keys.astype(np.int64)[:, None], neg_keys.astype(np.int64)[None, :]
    return int(2 * (p > n).sum() + (p == n).sum())


@pytest.mark.parametrize("seed", range(8))
def test_pairs_within_across_and_combined(seed: int) -> None:
    rng = np.random.default_rng(seed)
    span = int(rng.choice([3, 50, 10_000]))  # many ties to none
    (ka, la), (kb, lb) = events(rng, int(rng.integers(1, 400)), span), events(rng, int(rng.integers(1, 400)), span)
    a, b = counts(ka, la), counts(kb, lb)
    assert np.array_equal(a[0], np.unique(ka)) and int(a[2].sum()) == int(la.sum())
    assert pc.internal_twice_wins(a[1], a[2]) == brute(ka[la], ka[~la])
    across = brute(ka[la], kb[~lb]) + brute(kb[lb], ka[~la])
    assert pc.cross_twice_wins(a, pc.cumulative(b)) == across == pc.cross_twice_wins(b, pc.cumulative(a))
    both = counts(np.r_[ka, kb], np.r_[la, lb])
    merged = pc.uncumulative(pc.combine([a, b]))
    assert all(np.array_equal(x, y) for x, y in zip(merged, both, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(pc.uncumulative(pc.cumulative(b)), b, strict=True))
