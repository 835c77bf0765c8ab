"""Parallelism 2 on the mini-cluster: two Train subtasks, each with its own co-located TF worker,
both syncing with one parameter server. Measured against parallelism 1 on the same stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flinkdl.devtools.net import free_port
from flinkdl.ps.local import FINAL_REPORT
from flinkdl.sinks.predictions import read_predictions

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 409_600


def _run(base: Path, parallelism: int) -> tuple[Path, dict, list[dict]]:
    port = free_port()
    run_dir = base / f"p{parallelism}"
    proc = subprocess.run(
            [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--max-events", str(EVENTS),
             "--set", f"job.parallelism={parallelism}", "--set", "model.name=lr", "--set", "model.dense_optimizer=null",
             "--set", "features.hash_bits=20", "--set", "source.generator.batch_size=2048",
             "--set", f"job.run_dir={run_dir}",
             "--set", f"sinks.predictions.path={run_dir}/predictions.csv",
             "--set", "ps.enabled=true", "--set", f"ps.address=grpc://127.0.0.1:{port}",
             "--set", f"ps.checkpoint_dir={base}/ps-{parallelism}", "--set", "ps.push_every_batches=1",
             "--summary", str(run_dir / "summary.json")],
            cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(p.read_text()) for p in run_dir.glob(FINAL_REPORT.format(pid="*"))]
    return run_dir, json.loads((run_dir / "summary.json").read_text()), reports


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("parallel")


@pytest.fixture(scope="module")
def run_p2(base):
    return _run(base, 2)


def test_two_workers_each_train_their_partition_once(run_p2):
    run_dir, s, _ = run_p2
    assert s["events_in"] == s["events_trained"] == EVENTS
    # each subtask writes its own part of the predictions (the aggregator gets counts only)
    parts = sorted(run_dir.glob("predictions-*.csv"))
    assert [p.name for p in parts] == ["predictions-0.csv", "predictions-1.csv"]
    ids = np.sort(read_predictions(parts).column("event_id").to_numpy())
    assert np.array_equal(ids, np.arange(EVENTS)), "every event predicted exactly once"
    assert not s["auc_exact"] and s["auc_error_bound"] < 1e-4, "the merged binned AUC"
    logs = sorted(p.name for p in run_dir.glob("worker-*.log"))
    assert logs == ["worker-0.log", "worker-1.log"], "one co-located TF worker per Train subtask"
    for log in logs:  # model.xla_step auto: each worker says which step it takes (micro-batches: the generic one)
        assert "model.xla_step=auto: lr takes the generic step" in (run_dir / log).read_text(), log


def test_both_workers_learn_into_one_shared_model(run_p2):
    _, s, reports = run_p2
    # each worker pushed its deltas to the one server after every batch and committed at the end
    assert len(reports) == 2 and all(r["pushes"] >= r["batches"] > 0 for r in reports), reports
    assert sum(r["batches"] for r in reports) == EVENTS // 2048
    # learned (a fresh model scores 0.5); the gap to parallelism 1 is measured in docs/BENCHMARKS.md
    assert s["ps_version"] is not None and s["auc"] > 0.55, s


def test_two_workers_learn_as_well_as_one(base, run_p2):
    """The issue's bar: the combined progressive AUC of two workers within 0.01 of one worker."""
    _, one, _ = _run(base, 1)
    _, two, _ = run_p2
    print(f"\nprogressive AUC: parallelism 1 {one['auc']:.4f}, parallelism 2 {two['auc']:.4f}")
    assert abs(two["auc"] - one["auc"]) <= 0.01, (one["auc"], two["auc"])
