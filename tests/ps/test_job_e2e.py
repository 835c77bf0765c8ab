"""End-to-end: the real Flink job learning through the parameter server, across a job restart.

Run 1 uses ``flinkdl run --set ps.enabled=true`` with nothing listening, so the runner starts a
local server (versions in a temp directory) and stops it after the job; its token comes from the
environment through ``${VAR}`` in the config file, and no process of the running job may show it
on its command line. Run 2 talks to a
long-lived ``flinkdl ps serve`` on the same checkpoint directory: it must start from run 1's last
committed version, so its first batch is scored far better than run 1's (a fresh model's).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from flinkdl.devtools.net import free_port
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.ps.client import PsClient
from flinkdl.sinks.predictions import read_predictions

from .conftest import ROOT, PsProcess

pytestmark = pytest.mark.e2e
EVENTS = 40_960


TOKEN = "e2e-secret-4f1c9a"


def _cmdlines() -> dict[int, str]:
    out = {}
    for p in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            out[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return out


def _run(run_dir, address: str, ckpt, config: str = "jobs/click_stream.yaml", env: dict | None = None,
         watch: str | None = None) -> dict:
    """Run the job; with ``watch``, scan every process's command line for that string while it runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flinkdl.cli", "run", config, "--max-events", str(EVENTS),
         "--set", f"job.run_dir={run_dir}", "--set", f"sinks.predictions.path={run_dir}/predictions.csv",
         "--set", "ps.enabled=true", "--set", f"ps.address={address}", "--set", f"ps.checkpoint_dir={ckpt}",
         "--set", "ps.push_every_batches=4", "--set", "ps.commit_every_pushes=2",
         "--set", "features.hash_bits=20", "--summary", str(run_dir / "summary.json")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    leaks, seen = [], set()
    deadline = time.monotonic() + 400
    while watch is not None and proc.poll() is None and time.monotonic() < deadline:
        for pid, line in _cmdlines().items():
            seen.add(("java" in line, "flinkdl.cli ps serve" in line))
            if watch in line:
                leaks.append((pid, line))
        time.sleep(0.2)
    _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert proc.returncode == 0, err[-3000:]
    if watch is not None:
        assert not leaks, leaks
        assert (True, False) in seen and (False, True) in seen, "the job's JVM and PS were never seen running"
    return json.loads((run_dir / "summary.json").read_text())


def _first_batch_auc(run_dir) -> float:
    preds = read_predictions(run_dir / "predictions.csv")
    first = preds.column("model_version").to_numpy() == 1
    return auc_from_arrays(preds.column("label").to_numpy()[first], preds.column("score").to_numpy()[first])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ps-e2e")
    ckpt = base / "ps-versions"
    port = free_port()
    doc = yaml.safe_load((ROOT / "jobs/click_stream.yaml").read_text())
    doc.setdefault("ps", {})["token"] = "${FLINKDL_E2E_PS_TOKEN}"
    (base / "job.yaml").write_text(yaml.safe_dump(doc))
    # the runner starts a local server, with the run's token
    s1 = _run(base / "run1", f"grpc://127.0.0.1:{port}", ckpt, str(base / "job.yaml"),
              {"FLINKDL_E2E_PS_TOKEN": TOKEN}, watch=TOKEN)
    versions_after_1 = sorted(p.name for p in (ckpt / "manifests").iterdir())
    server = PsProcess(ckpt)  # a long-lived server on run 1's versions
    try:
        s2 = _run(base / "run2", server.address, ckpt)
        with PsClient(server.address) as c:
            info = {"versions": c.versions(), "emb": c.describe("emb"), "health": c.health()}
    finally:
        server.stop()
    return base, s1, s2, versions_after_1, info


def test_second_run_starts_from_the_first_runs_version(runs):
    base, s1, s2, _, _ = runs
    fresh, resumed = _first_batch_auc(base / "run1"), _first_batch_auc(base / "run2")
    assert fresh < 0.6, fresh  # a fresh model's first batch is near chance
    assert resumed > fresh + 0.1, (fresh, resumed)
    assert s2["auc"] > s1["auc"], (s1["auc"], s2["auc"])
    assert s1["events_trained"] == s2["events_trained"] == EVENTS
    assert s2["ps_version"] > s1["ps_version"] >= 1


def test_versions_were_committed_by_both_runs(runs):
    base, _, _, versions_after_1, info = runs
    assert versions_after_1, "run 1 committed nothing"
    assert info["versions"][-1]["version"] > int(versions_after_1[-1][1:9])
    assert info["emb"]["rows"] > 10_000 and info["emb"]["slots"] == ["accumulator"]
    log = (base / "run2" / "worker-0.log").read_text()
    assert "Traceback" not in log
    assert "Traceback" not in (base / "run1" / "worker-0.log").read_text()


def test_export_scores_raw_events_like_the_job(runs, tmp_path):
    from flinkdl.config.loader import load_config
    from flinkdl.features.transform import Featurizer
    from flinkdl.ps.export import export_saved_model, load_version
    from flinkdl.sources.generator import ClickStream

    base = runs[0]
    cfg = load_config(ROOT / "jobs/click_stream.yaml", ["features.hash_bits=20"])
    proc = subprocess.run([sys.executable, "-m", "flinkdl.cli", "ps", "export", "latest", str(tmp_path / "sm"),
                           "--config", "jobs/click_stream.yaml", "--set", "features.hash_bits=20",
                           "--checkpoint-dir", str(base / "ps-versions")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import tensorflow as tf

    scorer = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    raw = ClickStream(seed=7, drift_at=500_000).batch(3, 4096)
    cols = {c.name: tf.constant(raw.column(c.name).to_numpy(zero_copy_only=False).astype(np.int64))
            for c in cfg.features.categorical}
    for n in cfg.features.numeric:
        x = raw.column(n.name).cast("float64").fill_null(float("nan")).to_numpy(zero_copy_only=False)
        cols[n.name] = tf.constant(x)
    got = scorer(**cols)["score"].numpy()
    model, _ = load_version(cfg, str(base / "ps-versions"), None)
    feats = Featurizer(cfg.features).transform(raw)[0].to_pydict()
    ids = np.stack([feats[f"id_{k}"] for k in range(model.layout.n_ids)], 1)
    dense = np.stack([feats[f"x_{k}"] for k in range(model.layout.n_dense)], 1).astype(np.float32)
    want = model.predict(tf.constant(ids, tf.int64), tf.constant(dense)).numpy()
    assert np.allclose(got, want, atol=1e-6)
    assert auc_from_arrays(raw.column("label").to_numpy(), got) > 0.7
    export_saved_model(cfg, str(base / "ps-versions"), None, tmp_path / "again")  # in-process API too


def test_versions_record_the_newest_trained_event_time_and_predictions_their_model_age(runs):
    base, _, _, _, info = runs
    stamped = [v["trained_event_ts"] for v in sorted(info["versions"], key=lambda v: v["version"])]
    assert stamped and None not in stamped and stamped == sorted(stamped)  # annotated, never going back
    ages = [read_predictions(base / r / "predictions.csv", freshness=True).column("model_age_ms")
            for r in ("run1", "run2")]
    assert ages[0][0].as_py() is None and ages[0].null_count < len(ages[0])  # run 1: its first batch knew nothing
    assert ages[1].null_count == 0 and min(ages[1].to_pylist()) > 0  # run 2 starts from the PS's event time
