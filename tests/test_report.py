"""``flinkdl report`` draws a PNG from a run's metrics log (fed by the real RunLog)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.cli import main
from flinkdl.config.schema import JobConfig
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.sinks.run_log import RunLog

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"


def fill_run(run_dir: Path, batches: int = 60) -> None:
    """A drifting stream through RunLog: quality rises, collapses at the drift, recovers."""
    cfg = JobConfig.model_validate({
        "job": {"run_dir": str(run_dir), "report_every_s": 1e-9, "name": "report-test"},
        "evaluation": {"windows": [{"kind": "sliding_count", "size": 8000},
                                   {"kind": "tumbling_count", "size": 4000}],
                       "cumulative_bins": 1 << 16}})
    progress = RunLog(cfg)
    rng = np.random.default_rng(0)
    for b in range(batches):
        y = (rng.random(2000) < 0.25).astype(np.float32)
        skill = min(b, 30) / 15 if b < 30 else (b - 30) / 15
        s = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(size=2000) - 1)))
        preds = pa.record_batch([np.arange(b * 2000, (b + 1) * 2000), s.astype(np.float32), y,
                                 np.full(2000, b, np.int64)], schema=PREDICTION_SCHEMA)
        progress.update(2000, preds, b"")
    progress.finish()


def test_report_draws_png(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    fill_run(run_dir)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / "auc.png"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_report_names_a_missing_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err
