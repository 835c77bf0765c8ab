"""The /metrics endpoints (real HTTP servers on free ports) and the evaluation/metrics config."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from flinkdl.config.schema import EvaluationConfig, JobConfig, WindowConfig
from flinkdl.exchange.freshness import stamp
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.sinks.run_log import RunLog
from flinkdl.telemetry import names
from flinkdl.telemetry.exporter import MetricsEndpoint, WorkerMetrics


def scrape(target_file: Path) -> str:
    target = json.loads(target_file.read_text())[0]["targets"][0]
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as r:
        return r.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(f"{name} {labels} not in scrape")


def cfg_for(tmp_path: Path, **evaluation) -> JobConfig:
    return JobConfig.model_validate({
        "job": {"run_dir": str(tmp_path), "name": "t", "report_every_s": 1e-9},
        "metrics": {"enabled": True, "port": 0},
        "evaluation": {"cumulative_bins": 4096, **evaluation}})


def test_sink_exports_evaluation_counters_and_dead_letters(tmp_path: Path) -> None:
    progress = RunLog(cfg_for(tmp_path, windows=[{"kind": "sliding_count", "size": 100}]))
    try:
        rng = np.random.default_rng(0)
        y = (rng.random(500) < 0.3).astype(np.float32)
        s = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1).astype(np.float32)
        preds = pa.record_batch([np.arange(500), s, y, np.full(500, 7, np.int64)], schema=PREDICTION_SCHEMA)
        dead = b'{"reason": "not_numeric"}\n{"notice": "schema_drift", "field": "new", "rows": 3}\n' \
               b'{"reason": "not_numeric"}\n'
        progress.update(502, preds, dead)
        text = scrape(tmp_path / "prometheus" / "sink-0.json")
    finally:
        progress.finish()
    base = {"job": "t", "model": "deepfm", "subtask": "0"}
    assert sample(text, names.AUC_CUMULATIVE, **base) == pytest.approx(progress.evaluator.get().total.auc)
    assert sample(text, names.AUC_WINDOW, window="sliding_count_100") == pytest.approx(
        progress.evaluator.get().windows["sliding_count_100"].auc)
    assert sample(text, names.EVENTS_IN + "_total", **base) == 502
    assert sample(text, names.DEAD_LETTERS + "_total", reason="not_numeric") == 2
    assert sample(text, names.DEAD_LETTERS + "_total", reason="bad_id") == 0  # known reasons start at 0
    assert sample(text, names.SCHEMA_DRIFT_ROWS + "_total", column="new") == 3  # a notice, not a dead letter
    assert sample(text, names.MODEL_VERSION, **base) == 7
    assert sample(text, names.CALIBRATION, **base) == pytest.approx(s.mean() / y.mean(), rel=1e-5)


def test_undefined_auc_is_nan_not_half(tmp_path: Path) -> None:
    progress = RunLog(cfg_for(tmp_path))
    try:
        preds = pa.record_batch([np.arange(10), np.full(10, 0.2, np.float32), np.zeros(10, np.float32),
                                 np.zeros(10, np.int64)], schema=PREDICTION_SCHEMA)
        progress.update(10, preds, b"")
        text = scrape(tmp_path / "prometheus" / "sink-0.json")
    finally:
        progress.finish()
    assert np.isnan(sample(text, names.AUC_CUMULATIVE))


def test_sink_observes_scoring_latency_and_model_age_per_stamped_batch(tmp_path: Path) -> None:
    progress = RunLog(cfg_for(tmp_path))
    try:
        preds = pa.record_batch([np.arange(4), np.full(4, 0.2, np.float32), np.ones(4, np.float32),
                                 np.zeros(4, np.int64)], schema=PREDICTION_SCHEMA)
        progress.update(4, preds, b"", stamp(b"", 4, arrived_ms=10_000, scored_ms=10_040, model_ts=4_000))
        progress.update(4, preds, b"", stamp(b"", 4, arrived_ms=20_000, scored_ms=20_300))  # age unknown
        progress.update(4, preds, b"")  # no stamps at all: nothing observed
        text = scrape(tmp_path / "prometheus" / "sink-0.json")
    finally:
        progress.finish()
    assert sample(text, names.SCORING_LATENCY_SECONDS + "_count") == 2
    assert sample(text, names.SCORING_LATENCY_SECONDS + "_sum") == pytest.approx(0.34)
    assert sample(text, names.MODEL_AGE_SECONDS + "_count") == 1
    assert sample(text, names.MODEL_AGE_SECONDS + "_sum") == pytest.approx(6.04)


def test_worker_and_ps_metrics_on_one_endpoint(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    w = WorkerMetrics(cfg, subtask=3, with_ps=True)
    w.endpoint.start()
    try:
        w.step(0.004, 4096, 12)
        w.ps.pull_seconds.observe(0.002)
        w.ps.after_step(False, 0.0, SimpleNamespace(batches=1))
        w.ps.after_step(False, 0.0, SimpleNamespace(batches=2))
        lag_before_sync = sample(scrape(tmp_path / "prometheus" / "worker-3.json"), names.PS_LAG_BATCHES)
        w.ps.after_step(True, 0.03, SimpleNamespace(batches=3))
        text = scrape(tmp_path / "prometheus" / "worker-3.json")
    finally:
        w.endpoint.stop()
    assert sample(text, names.WORKER_EVENTS + "_total", subtask="3") == 4096
    assert sample(text, names.WORKER_BATCH_SECONDS + "_count") == 1
    assert lag_before_sync == 2 and sample(text, names.PS_LAG_BATCHES) == 0
    assert sample(text, names.PS_SYNCS + "_total") == 1
    assert sample(text, names.PS_PUSH_SECONDS + "_count") == 1


def test_port_zero_picks_a_free_port_and_writes_file_sd(tmp_path: Path) -> None:
    a, b = MetricsEndpoint(cfg_for(tmp_path), "x", 0), MetricsEndpoint(cfg_for(tmp_path), "x", 1)
    try:
        assert a.start() != b.start() and a.port > 0
        sd = json.loads(a.target_file.read_text())
        assert sd == [{"targets": [f"127.0.0.1:{a.port}"], "labels": {"component": "x"}}]
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("bad, match", [
    ({"kind": "sliding_count", "size_s": 5}, "needs 'size'"),
    ({"kind": "tumbling_time", "size": 5}, "needs 'size_s'"),
    ({"kind": "hopping", "size": 5}, "kind"),
])
def test_window_config_errors(bad: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        WindowConfig.model_validate(bad)


def test_time_windows_need_a_timestamp_and_names_are_unique() -> None:
    with pytest.raises(ValidationError, match=r"features\.timestamp"):
        JobConfig.model_validate({"features": {"timestamp": None, "numeric": ["x"]},
                                  "evaluation": {"windows": [{"kind": "sliding_time", "size_s": 10}]}})
    with pytest.raises(ValidationError, match="duplicate"):
        EvaluationConfig(windows=[{"kind": "sliding_count", "size": 5}, {"kind": "sliding_count", "size": 5}])


def test_sink_counts_scored_and_trained_events_apart(tmp_path: Path) -> None:
    progress = RunLog(cfg_for(tmp_path))
    try:
        label = pa.array([1.0, None, 0.0, None, 1.0], pa.float32())
        preds = pa.record_batch([np.arange(5), np.full(5, 0.4, np.float32), label, np.ones(5, np.int64)],
                                schema=PREDICTION_SCHEMA)
        progress.update(5, preds, b"")
        text = scrape(tmp_path / "prometheus" / "sink-0.json")
    finally:
        progress.finish()
    assert sample(text, names.EVENTS_SCORED + "_total") == 5
    assert sample(text, names.EVENTS_TRAINED + "_total") == 3


def test_serving_metrics_export_version_and_refresh_lag(tmp_path: Path) -> None:
    from flinkdl.telemetry.exporter import ServingMetrics

    m = ServingMetrics(cfg_for(tmp_path), subtask=1)
    m.endpoint.start()
    try:
        m.loaded(1, 0.4)
        m.loaded(2, 1.7)
        m.scored(500, 0.01)
        text = scrape(tmp_path / "prometheus" / "serving-1.json")
    finally:
        m.endpoint.stop()
    assert sample(text, names.SERVING_MODEL_VERSION, subtask="1") == 2
    assert sample(text, names.SERVING_REFRESH_LAG_SECONDS + "_count") == 2
    assert sample(text, names.SERVING_REFRESH_LAG_SECONDS + "_bucket", le="0.5") == 1
    assert sample(text, names.SERVING_EVENTS + "_total") == 500
