"""The delayed built-in stream (shape, order) and the settled-label evaluator (pairing in either order)."""

import numpy as np
import pytest

from flinkdl.config.feedback import DelayConfig
from flinkdl.feedback.calibration import fn_calibrate
from flinkdl.feedback.evaluation import SettledEvaluator
from flinkdl.sources.delayed import DelayedStream, draw_delays_s
from flinkdl.sources.generator import ClickStream


def test_the_default_delays_have_chapelles_shape():
    d = draw_delays_s(100_000, np.random.default_rng(0), DelayConfig())
    assert (d <= 3600).mean() == pytest.approx(0.35, abs=0.02)
    assert (d <= 86_400).mean() == pytest.approx(0.50, abs=0.03)
    assert draw_delays_s(1000, np.random.default_rng(0), DelayConfig(scale=1 / 60)) == pytest.approx(
        draw_delays_s(1000, np.random.default_rng(0), DelayConfig()) / 60)


def test_every_positive_becomes_one_later_click_and_clicks_come_in_time_order():
    s = ClickStream(seed=3)
    events = list(DelayedStream(s, DelayConfig(scale=1 / 60)).events(3000, 500))
    labels = np.concatenate([s.batch(i, 500).column("label").to_numpy() for i in range(6)])
    clicks = [(i, t) for kind, b in events if kind == "clicks"
              for i, t in zip(b.column("event_id").to_pylist(), b.column("ts").to_pylist(), strict=True)]
    assert sorted(i for i, _ in clicks) == np.flatnonzero(labels).tolist()
    assert [t for _, t in clicks] == sorted(t for _, t in clicks)
    assert all(t >= s.start_ts_ms + i for i, t in clicks)  # one event per ms: the impression's ts
    seen_imp = 0  # a click is written only after its impression
    for kind, b in events:
        if kind == "impressions":
            seen_imp += b.num_rows
        else:
            assert max(b.column("event_id").to_pylist()) < seen_imp


def test_scores_and_labels_pair_in_either_order():
    e = SettledEvaluator(window_ms=10)
    e.settle(2, 15, 0)
    e.served(np.array([1, 2]), np.array([0.8, 0.3]))
    assert e.summary()["settled"] == 1 and e.summary()["scores_pending"] == 1
    e.settle(1, 5, 1)
    s = e.summary()
    assert s["settled"] == 2 and s["scores_pending"] == 0 and s["labels_pending"] == 0
    assert s["total"]["auc"] == 1.0 and s["total"]["calibration"] == pytest.approx(1.1 / 2 / 0.5)
    assert sorted(s["windows"]) == ["0", "10"]


def test_an_event_settles_and_counts_by_its_plus_joined_kinds():
    e = SettledEvaluator(window_ms=10)
    e.apply(("events", [("settle+late_positive", 1, 5, 0), ("settle", 2, 6, 1), ("no_label+late_events", 3, 7, 0),
                        ("bad_message", -1, 0, 0)]))
    s = e.summary()
    assert s["labels_pending"] == 2 and s["settled"] == 0  # settled once served
    assert e.counts == {"late_positive": 1, "no_label": 1, "late_events": 1, "bad_message": 1}


def test_fn_calibration_inverts_the_fake_negative_bias():
    p = np.array([0.01, 0.1, 0.3, 0.45])
    b = p / (1 + p)  # what a model trained on fake negatives learns
    assert fn_calibrate(b) == pytest.approx(p)


def test_a_snapshot_and_the_steps_after_it_rebuild_the_evaluator_exactly():
    rng = np.random.default_rng(1)
    steps = []
    for k in range(6):
        ids = np.arange(k * 50, (k + 1) * 50)
        steps.append(("served", ids, rng.random(50)))
        steps.append(("events", [("settle", int(i), int(i) * 10, int(i % 3 == 0)) for i in ids[::2] - 20
                                 if i >= 0] + [("late_events", -1, 0, 0)]))
    whole = SettledEvaluator(window_ms=200)
    for s in steps:
        whole.apply(s)
    first = SettledEvaluator(window_ms=200)
    for s in steps[:5]:
        first.apply(s)
    restored = SettledEvaluator.from_bytes(first.to_bytes())
    for s in steps[5:]:
        restored.apply(s)
    assert restored.summary() == whole.summary()
    assert whole.summary()["join"] == {"late_events": 6} and whole.summary()["settled"] > 0
