"""Collisionless ids in a bounded table: admission by count, LRU / TTL eviction, reset rows."""

from __future__ import annotations

import numpy as np

from flinkdl.config.dynamic import DynamicConfig
from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model
from flinkdl.models.dynamic import DynamicIdModel, IdRows
from flinkdl.models.tensors import to_tensor

WIDE = FeatureLayout(n_ids=2, n_dense=1, buckets=1 << 31)


def test_ids_are_admitted_at_their_kth_occurrence_and_never_share_a_row():
    rows = IdRows(DynamicConfig(capacity=10, admit_after=2), n_fields=2)
    ids = np.array([[5, 7], [5, 9]], np.int64)
    r, _ = rows.map(ids)  # a first occurrence (once per batch): the field's fallback row
    assert r.tolist() == [[10, 11], [10, 11]]
    r, _ = rows.map(np.array([[5, 8]], np.int64))
    assert r[0, 0] < 10 and r[0, 1] == 11  # 5: second occurrence, its own row; 8: first, fallback
    wide = np.array([[1 << 40, (1 << 40) + (1 << 20)]], np.int64)  # ids a 20-bit hash would merge
    rows.map(wide)
    r, _ = rows.map(wide)
    assert r[0, 0] != r[0, 1] and max(r[0]) < 10 and rows.admitted == 3


def test_a_full_table_evicts_the_least_recently_used_and_frees_expired_rows():
    rows = IdRows(DynamicConfig(capacity=4, ttl_steps=3), n_fields=1)
    for k in range(4):
        rows.map(np.array([[k]], np.int64))
    rows.map(np.array([[0]], np.int64))  # 0 is fresh again; 1 is now the least recently used
    _, freed = rows.map(np.array([[99]], np.int64))
    assert len(freed) == 1 and rows.owner[freed[0]] == 99 and 1 not in rows.owner
    for _ in range(5):
        rows.map(np.array([[99]], np.int64))
    assert set(rows.owner[rows.owner >= 0]) == {99}  # the others expired (ttl 3 steps)
    assert rows.evicted == 4


def _churn_run(admit_after: int) -> tuple[DynamicIdModel, float]:
    """40 frequent ids (learnable) beside a churn of one-off ids, in a 64-row table."""
    cfg = ModelConfig(name="dynamic", embedding_dim=4, dynamic=DynamicConfig(base="fm", capacity=64,
                                                                             admit_after=admit_after))
    m = build_model(WIDE, cfg)
    assert isinstance(m, DynamicIdModel)
    rng = np.random.default_rng(0)
    sign = rng.choice([-1.0, 1.0], 40)
    hits = []
    for _ in range(300):
        a = rng.integers(0, 40, 32)
        ids = np.stack([a * 1_000_003, rng.integers(1 << 32, 1 << 40, 32)], axis=1).astype(np.int64)
        y = (rng.random(32) < 1 / (1 + np.exp(-2 * sign[a]))).astype(np.float32)
        p = m.predict_then_train(ids, np.zeros((32, 1), np.float32), y).numpy()
        hits.append(((p > 0.5) == (sign[a] > 0)).mean())
    return m, float(np.mean(hits[-100:]))


def test_admission_keeps_frequent_ids_in_a_bounded_table_that_churn_would_flush():
    m, acc = _churn_run(admit_after=2)
    assert m.variables()["emb"].shape[0] == 64 + 2  # capacity + one fallback row per field, not 2**31
    assert m.ids.evicted == 0 and (m.ids.owner >= 0).sum() == 40 and acc > 0.8, acc
    assert m.version == 300
    churned, acc1 = _churn_run(admit_after=1)  # every one-off id admitted: LRU evicts the frequent ones
    assert churned.ids.evicted > 5000 and acc1 < acc - 0.1, (acc1, acc)
    # a row handed to a new id starts from the initial values again (embedding and optimizer slot)
    emb, slot = churned.variables()["emb"], churned.slot_variables()["emb/accumulator"]
    rows = churned._rows(np.array([[7 << 45, 9 << 45]], np.int64))
    assert np.all(emb.numpy()[rows[0]] == churned._initial["emb"])
    assert np.all(slot.numpy()[rows[0]] == churned._initial["emb/accumulator"])


def test_the_tables_stay_bounded_over_many_distinct_ids():
    """200k one-off ids through a 100-row table: ids held, buckets and deleted buckets stay bounded,
    counts are cleared each window, and absent ids still look up (no table without empty buckets)."""
    cfg = DynamicConfig(capacity=100, admit_after=2, count_window_steps=50, count_max_ids=50 * 200)
    rows = IdRows(cfg, n_fields=2)
    rng = np.random.default_rng(0)
    tables = rows.rows, rows.counts  # emptied in place, never replaced (TF would not free the old ones)
    prev = np.zeros((0, 2), np.int64)
    for step in range(1, 1001):
        batch = np.arange(step * 200, step * 200 + 200, dtype=np.int64).reshape(100, 2) << 20
        r, _ = rows.map(np.concatenate([batch, prev]))  # prev: 10 ids at their second occurrence, admitted
        prev = batch[:5]
        assert r.max() < 100 + 2
        if step % 100 == 0:
            s = rows.stats()
            assert s["rows_ids"] == s["rows_used"] <= 100 and s["rows_buckets"] == 256
            assert s["rows_deleted"] < 256 - 100  # empty buckets left: lookups of absent ids end
            assert s["counts_ids"] <= 50 * 200 and s["counts_buckets"] <= 1 << 17
    # 999 steps × 10 ids at their second occurrence, less those whose first fell just before a clearing
    assert rows.admitted == 9990 - 20 * 10 and rows.evicted == rows.admitted - 100 and rows.rebuilds > 100
    assert (rows.rows, rows.counts) == tables
    assert rows.map(rng.integers(1 << 40, 1 << 41, (5, 2)))[0].tolist() == [[100, 101]] * 5
    few = IdRows(DynamicConfig(capacity=100, admit_after=2, count_window_steps=0, count_max_ids=300), n_fields=2)
    for step in range(1, 20):
        few.map(np.arange(step * 200, step * 200 + 200, dtype=np.int64).reshape(100, 2))
        assert few.stats()["counts_ids"] <= 300 + 200  # cleared once it held 300 ids


def test_to_tensor_keeps_values_of_any_layout_and_shares_aligned_memory():
    """Non-contiguous, read-only, broadcast, unaligned and empty arrays all arrive as they are."""
    base = np.arange(40, dtype=np.int64)
    arrays = [base[1:9], base.reshape(8, 5)[:, 1], np.broadcast_to(np.float32(1.5), (3, 2)),
              np.asarray(to_tensor(base.reshape(4, 10))), np.zeros((0, 4), np.float32), np.full((6, 1), -1, np.int64)]
    for a in arrays:
        t = to_tensor(a)
        assert t.dtype.as_numpy_dtype == a.dtype and tuple(t.shape) == a.shape and np.array_equal(t.numpy(), a)
