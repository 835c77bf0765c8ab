"""The feedback job's settled-label metrics on a real /metrics endpoint (a free port)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flinkdl.feedback.evaluation import SettledEvaluator
from flinkdl.telemetry import names
from flinkdl.telemetry.feedback import FeedbackMetrics
from tests.telemetry.test_exporter import cfg_for, sample, scrape


def test_settled_quality_late_feedback_and_join_counters_are_exported(tmp_path: Path) -> None:
    e = SettledEvaluator(window_ms=100)
    e.served(np.arange(4), np.array([0.9, 0.2, 0.6, 0.1]))
    for i, y in [(0, 1), (1, 0), (2, 0)]:
        e.settle(i, i * 10, y)
    for kind in ("late_positive", "late_events", "late_events", "out_of_window"):
        e.count(kind)
    m = FeedbackMetrics(cfg_for(tmp_path))
    m.start()
    try:
        m.publish(e.summary())
        m.publish(e.summary())  # the same cumulative counts again: counters do not move
        text = scrape(tmp_path / "prometheus" / "feedback-0.json")
    finally:
        m.stop()
    total = e.summary()["total"]
    assert sample(text, names.SETTLED_AUC) == pytest.approx(total["auc"])
    assert sample(text, names.SETTLED_LOGLOSS) == pytest.approx(total["logloss"])
    assert sample(text, names.SETTLED_CALIBRATION) == pytest.approx(total["calibration"])
    assert sample(text, names.SETTLED_EVENTS + "_total") == 3 and sample(text, names.SETTLED_PENDING) == 1
    assert sample(text, names.FEEDBACK_LATE + "_total", kind="late_events") == 2
    assert sample(text, names.FEEDBACK_LATE + "_total", kind="late_positive") == 1
    assert sample(text, names.FEEDBACK_JOIN_EVENTS + "_total", kind="out_of_window") == 1
