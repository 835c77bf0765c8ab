"""Partial evaluation: subtasks' counts merged equal the evaluation of the whole stream."""

import numpy as np

from flinkdl.config.schema import EvaluationConfig
from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.evaluator import StreamEvaluator
from flinkdl.evaluation.merged_windows import WINDOW_BINS
from flinkdl.evaluation.partial import MergedEvaluator, Partial, PartialEvaluator


def _stream(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1).astype(np.float32)
    ts = np.arange(n, dtype=np.float64) * 10.0  # 10 ms apart: 100 events per second
    return y, s, ts


def _split(cfg, parallelism, batch=500, reports=2):
    """The stream's batches dealt round-robin to ``parallelism`` subtasks; each sends a partial every
    ``reports`` of its batches."""
    y, s, ts = _stream()
    subs = [PartialEvaluator(cfg) for _ in range(parallelism)]
    merged = MergedEvaluator(cfg, parallelism)
    for k, i in enumerate(range(0, y.size, batch)):
        sub = subs[k % parallelism]
        sub.update(y[i:i + batch], s[i:i + batch], ts[i:i + batch])
        if k // parallelism % reports == reports - 1:
            merged.merge(Partial.decode(sub.take(k % parallelism).encode()))
    for j, sub in enumerate(subs):
        merged.merge(sub.take(j))
    return merged.get(), (y, s, ts)


def test_merged_totals_equal_one_binned_evaluator_at_any_parallelism():
    cfg = EvaluationConfig(windows=[], cumulative_bins=4096)
    y, s, _ = _stream()
    one = StreamEvaluator(cfg)
    one.update(y, s)
    want = one.get().total
    for p in (1, 2, 4):
        got, _ = _split(cfg, p)
        assert got.total.auc == want.auc and got.total.auc_error_bound == want.auc_error_bound
        assert got.total.events == want.events == y.size
        for k in ("logloss", "mean_score", "ctr", "calibration"):
            assert abs(getattr(got.total, k) - getattr(want, k)) < 1e-12, k


def test_merged_windows():
    cfg = EvaluationConfig(windows=[{"kind": "tumbling_time", "size_s": 60}, {"kind": "sliding_count", "size": 5000},
                                    {"kind": "tumbling_count", "size": 4000}, {"kind": "sliding_time", "size_s": 40}],
                           cumulative_bins=4096)
    got, (y, s, ts) = _split(cfg, 2)
    w = got.windows
    # tumbling minutes of event time: 200 s of stream, the last closed window is [120 s, 180 s)
    sel = (ts >= 120_000) & (ts < 180_000)
    ref = BinnedAUC(WINDOW_BINS)
    ref.update(y[sel], s[sel])
    assert w["tumbling_time_60s"].events == sel.sum() and w["tumbling_time_60s"].auc == ref.get()
    # count windows are cut at partial boundaries: at least the size, less than size + one partial
    assert 5000 <= w["sliding_count_5000"].events <= 5000 + 1000
    assert 4000 <= w["tumbling_count_4000"].events <= 4000 + 1000
    assert 0.5 < w["sliding_count_5000"].auc < 1
    assert 35 * 100 <= w["sliding_time_40s"].events <= 40 * 100


def test_a_partial_is_counts_its_size_does_not_grow_with_events():
    cfg = EvaluationConfig(windows=[{"kind": "sliding_count", "size": 1000}], cumulative_bins=1024)
    y, s, _ = _stream(400_000)
    small, big = PartialEvaluator(cfg), PartialEvaluator(cfg)
    small.update(y[:100_000], s[:100_000])
    big.update(y, s)
    a, b = len(small.take(0).encode()), len(big.take(0).encode())
    bound = 4096 + (1024 + WINDOW_BINS) * 20  # per cell: index, two counts, two scores (4 bytes each)
    assert a <= b <= bound, (a, b, bound)
