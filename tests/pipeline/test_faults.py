"""Fault matrix on the embedded mini-cluster: kill -9 mid-stream, the job recovers by itself and
ends where an uncrashed run ends (exactly-once mode, docs/EXACTLY_ONCE.md).

One clean run and one run per fault, all on the same throttled stream, each with its own real
parameter server (``flinkdl ps serve``). Killed with SIGKILL while the stream is a third through:

- ``worker``: the TF worker process (recovered in place by the trainer operator);
- ``harness``: the Flink Python process hosting the trainer (``job.python_harness: process``, as
  on a cluster; the task fails and Flink restarts the job from the last checkpoint);
- ``ps``: the parameter server, started again a second later on the same port and versions.

Each run must answer every event exactly once in the prediction file, match the clean run's
progressive AUC within 0.002 and leave the PS with the clean run's rows (within ``ROW_TOL``).
The TaskManager and broker faults need a standalone cluster and a durable broker: see
tests/cluster/test_lifecycle.py and tests/pipeline/test_kafka_e2e.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from flinkdl.ps.client import PsClient
from flinkdl.sinks.predictions import read_predictions
from tests.ps.conftest import ROOT, PsProcess

pytestmark = pytest.mark.e2e
EVENTS, BATCH, RATE = 40_960, 1024, 4096  # 40 batches over ~10 s
AUC_TOL, ROW_TOL = 0.002, 1e-4


def _worker_pid(run_dir: Path, timeout: float = 120.0, not_pid: int | None = None) -> int:
    """The TF worker of this run (its config argument names the run dir)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = p.info["cmdline"] or []
            if "flinkdl.worker" in cmd and any(str(run_dir) in a for a in cmd) and p.info["pid"] != not_pid:
                return p.info["pid"]
        time.sleep(0.2)
    raise TimeoutError(f"no worker process for {run_dir}")


def _wait_predictions(run_dir: Path, rows: int, timeout: float = 180.0) -> None:
    path, deadline = run_dir / "predictions.csv", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") > rows:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{path} never reached {rows} rows")


def kill_worker(run_dir: Path, ps: PsProcess) -> dict:
    pid = _worker_pid(run_dir)
    _wait_predictions(run_dir, EVENTS // 3)
    psutil.Process(pid).send_signal(signal.SIGKILL)
    return {"killed": pid, "new_worker": _worker_pid(run_dir, not_pid=pid)}


def kill_harness(run_dir: Path, ps: PsProcess) -> dict:
    worker = _worker_pid(run_dir)
    harness = psutil.Process(worker).parent()
    _wait_predictions(run_dir, EVENTS // 3)
    harness.send_signal(signal.SIGKILL)
    new = _worker_pid(run_dir, not_pid=worker)
    return {"killed": harness.pid, "new_harness": psutil.Process(new).parent().pid}


def kill_ps(run_dir: Path, ps: PsProcess) -> dict:
    _wait_predictions(run_dir, EVENTS // 3)
    pid = ps.proc.pid
    ps.kill9()
    time.sleep(1.0)
    ps.start()
    return {"killed": pid, "restarted": ps.proc.pid}


def _run(base: Path, name: str, fault: Callable[[Path, PsProcess], dict] | None) -> dict:
    run_dir, ps = base / name, PsProcess(base / f"{name}-ps-versions")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--max-events", str(EVENTS),
             "--set", f"job.run_dir={run_dir}", "--set", f"sinks.predictions.path={run_dir}/predictions.csv",
             "--set", f"source.generator.batch_size={BATCH}", "--set", f"source.generator.max_rate_per_s={RATE}",
             "--set", "features.hash_bits=16", "--set", "worker.intra_op_threads=1",
             "--set", "ps.enabled=true", "--set", f"ps.address={ps.address}",
             "--set", "ps.push_every_batches=4", "--set", "ps.push_every_s=1000",
             "--set", "job.exactly_once=true", "--set", "job.checkpoint_interval_s=0.5",
             "--set", "job.snapshot_every_s=1", "--set", "job.python_harness=process", "--summary", str(run_dir / "summary.json")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        injected = fault(run_dir, ps) if fault else {}
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-4000:]
        with PsClient(ps.address) as c:
            tables = {t: c.pull_all(t) for t in c.list_tables()}
            dense = c.dense_get()
    finally:
        if proc.poll() is None:
            proc.kill()
        ps.stop()
    preds = read_predictions(run_dir / "predictions.csv")
    return {"summary": json.loads((run_dir / "summary.json").read_text()), "ids": preds.column("event_id").to_numpy(),
            "tables": tables, "dense": dense, "injected": injected}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def clean(base) -> dict:
    return _run(base, "clean", None)


def _row_gap(a: dict, b: dict) -> float:
    gap = 0.0
    assert a["tables"].keys() == b["tables"].keys()
    for name, (ids, rows) in a["tables"].items():
        ids_b, rows_b = b["tables"][name]
        assert np.array_equal(np.sort(ids), np.sort(ids_b)), f"table {name}: other rows"
        gap = max(gap, float(np.abs(rows[np.argsort(ids)] - rows_b[np.argsort(ids_b)]).max()))
    for name, value in a["dense"].items():
        gap = max(gap, float(np.abs(value - b["dense"][name]).max()))
    return gap


@pytest.mark.parametrize("fault", [kill_worker, kill_harness, kill_ps], ids=["worker", "harness", "ps"])
def test_kill_9_recovers_exactly_once(base, clean, fault):
    run = _run(base, fault.__name__, fault)
    s, c = run["summary"], clean["summary"]
    assert not psutil.pid_exists(run["injected"]["killed"]) or \
        psutil.Process(run["injected"]["killed"]).status() == psutil.STATUS_ZOMBIE
    ids, counts = np.unique(run["ids"], return_counts=True)
    duplicates = int((counts - 1).sum())
    auc_delta, rows_gap = abs(s["auc"] - c["auc"]), _row_gap(run, clean)
    print(f"\nfault {fault.__name__}: {run['injected']} auc {s['auc']:.6f} (clean {c['auc']:.6f}, delta {auc_delta:.2e}) "
          f"duplicates {duplicates} ps row gap {rows_gap:.2e}")
    assert s["events_in"] == s["events_trained"] == EVENTS
    assert np.array_equal(ids, np.arange(EVENTS)) and duplicates == 0, "every event answered exactly once"
    assert auc_delta <= AUC_TOL
    assert rows_gap <= ROW_TOL
