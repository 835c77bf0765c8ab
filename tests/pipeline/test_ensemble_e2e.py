"""End-to-end: an ensemble on a generator family member through the real job; its variants in the summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 24_576


def test_an_ensemble_on_a_family_member_reports_every_variant(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--max-events", str(EVENTS),
         "--set", f"job.run_dir={run_dir}", "--set", "sinks.predictions=null", "--set", "features.hash_bits=18",
         "--set", "source.generator.preset=family-2", "--set", "model.name=ensemble",
         "--set", "model.ensemble.base=lr", "--summary", str(tmp_path / "summary.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["model"] == "ensemble" and s["events_trained"] == EVENTS
    variants = {v["id"]: v for v in s["variants"]}
    assert set(variants) == {"lr_x1", "lr_x0.5", "lr_x2"}
    assert sum(v["weight"] for v in variants.values()) == pytest.approx(1.0)
    for v in variants.values():
        assert v["events"] == EVENTS and 0.5 < v["auc"] < 1 and v["window_auc"] is not None
    # the served mixture is at least about as good as its variants (exponential weights on log loss)
    assert s["logloss"] <= min(v["logloss"] for v in variants.values()) + 0.005, (s, variants)
    assert s["oracle_auc"] > 0.85  # family-2's own oracle (the built-in stream's is ~0.85 over its first events)
