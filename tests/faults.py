"""Shared by the fault tests (mini-cluster and standalone cluster): one throttled exactly-once
run of the built-in stream, how to find its processes, and how to compare two runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from flinkdl.devtools.broker import Broker
from flinkdl.ps.client import PsClient
from flinkdl.sinks.predictions import read_predictions

ROOT = Path(__file__).resolve().parents[1]

# 40 batches over ~32 s, paced at the trainer (worker.max_rows_per_s), one batch per PyFlink bundle.
# The source starts before the TF worker is ready and what it makes meanwhile waits in Flink's
# buffers; paced only at the source, it went through in under a second once the worker was up,
# and a fault could land after the last event (the CI failures where the job had already
# finished). A bundle's outputs leave the trainer only when the whole bundle is done, so with the
# default bundle size the backlog's predictions came out at once after ~32 s: bundle size 1.
EVENTS, BATCH, RATE = 40_960, 1024, 1280
AUC_TOL, ROW_TOL = 0.002, 1e-4


def overrides(run_dir: Path, ps_address: str, generator: bool = True) -> list[str]:
    """``--set`` overrides of jobs/click_stream*.yaml for a fault-test run."""
    source = [f"source.generator.events={EVENTS}", f"source.generator.batch_size={BATCH}",
              f"source.generator.max_rate_per_s={RATE}"] if generator else []
    return [*source, f"job.run_dir={run_dir}", f"sinks.predictions.path={run_dir}/predictions.csv",
            "features.hash_bits=16", "worker.intra_op_threads=1", "worker.step_timeout_s=30",
            f"worker.max_rows_per_s={RATE}", "job.bundle_size=1",
            "ps.enabled=true", f"ps.address={ps_address}", "ps.push_every_batches=4", "ps.push_every_s=1000",
            "job.exactly_once=true", "job.checkpoint_interval_s=0.5", "job.snapshot_every_s=1",
            "job.python_harness=process"]


class Job:
    """``python -m flinkdl.cli ARGS`` with its output in ``log`` (a file: a pipe that nobody reads
    would block the job once 64 KB of logs fill it)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "flinkdl.cli", *args], cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)

    def check(self) -> None:
        """Raise, with the logs, if the job has exited (the caller was waiting for it to do something)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"the job exited ({self.proc.returncode}) early\n{self.logs()}")

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the job ran over {timeout} s\n{self.logs()}") from None
        assert self.proc.returncode == 0, self.logs()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        """The job's output and Flink's task state changes and exceptions: what a CI failure needs."""
        return f"--- job output\n{tail(self.log)}\n--- Flink log\n{flink_log_excerpt()}"


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"({path} missing)"


def flink_log_excerpt(lines: int = 40) -> str:
    import pyflink

    logs = sorted((Path(pyflink.__file__).parent / "log").glob("*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return "(no Flink log)"
    keep = re.compile(r"switched from|Exception|Caused by|Error|restart", re.IGNORECASE)
    return "\n".join([ln[:400] for ln in logs[-1].read_text(errors="replace").splitlines() if keep.search(ln)][-lines:])


def worker_pids(run_dir: Path) -> set[int]:
    """The TF workers of this run now (their environment names the run dir)."""
    found = set()
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        cmd, env = p.info["cmdline"] or [], p.info["environ"] or {}
        if "flinkdl.worker" in cmd and env.get("FLINKDL_RUN_DIR") == str(run_dir):
            found.add(p.info["pid"])
    return found


def worker_pid(run_dir: Path, timeout: float = 300.0, not_pid: int | set[int] | None = None,
               job: Job | None = None) -> int:
    """A TF worker of this run, not ``not_pid`` (one pid, or a set: a worker started since)."""
    old = not_pid if isinstance(not_pid, set) else {not_pid}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job:
            job.check()
        if fresh := worker_pids(run_dir) - old:
            return min(fresh)
        time.sleep(0.2)
    raise TimeoutError(f"no worker process for {run_dir}\n{job.logs() if job else ''}")


def prediction_files(run_dir: Path) -> list[Path]:
    """The run's prediction files: ``predictions.csv`` (parallelism 1) and the parts of each
    subtask at parallelism > 1 (``predictions-<subtask>.csv``), those that exist."""
    return [p for p in [run_dir / "predictions.csv", *sorted(run_dir.glob("predictions-*.csv"))] if p.exists()]


def predicted_rows(run_dir: Path) -> int:
    """Prediction rows written so far over every file (each starts with a header line)."""
    return sum(max(0, p.read_bytes().count(b"\n") - 1) for p in prediction_files(run_dir))


def wait_predictions(run_dir: Path, rows: int = EVENTS // 3, timeout: float = 180.0, job: Job | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job:
            job.check()
        if predicted_rows(run_dir) > rows:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{run_dir}: predictions never reached {rows} rows\n{job.logs() if job else ''}")


def assert_mid_stream(run_dir: Path) -> int:
    """Call right before a fault: the job has not answered every event yet (else the fault
    would test nothing). Returns the predictions written so far."""
    rows = predicted_rows(run_dir)
    assert rows < EVENTS, f"the stream was over ({rows} predictions) before the fault"
    return rows


def bounce_broker(broker: Broker, run_dir: Path, job: Job) -> None:
    """Once the job is mid-stream: kill the broker, and restart it a second later."""
    wait_predictions(run_dir, job=job)
    assert_mid_stream(run_dir)
    broker.kill()
    time.sleep(1.0)
    broker.restart()


def outcome(run_dir: Path, ps_address: str, summary: dict) -> dict:
    """What a run left: its summary, the predicted ids and every PS table and dense variable."""
    with PsClient(ps_address) as c:
        tables = {t: c.pull_all(t) for t in c.list_tables()}
        dense = c.dense_get()
    ids = read_predictions(prediction_files(run_dir)).column("event_id").to_numpy()
    return {"summary": summary, "ids": ids, "tables": tables, "dense": dense}


def compare(run: dict, clean: dict, label: str) -> dict:
    """Assert the fault run ended where the clean one did; return the measured gaps."""
    s, c = run["summary"], clean["summary"]
    ids, counts = np.unique(run["ids"], return_counts=True)
    gap = {"auc_delta": abs(s["auc"] - c["auc"]), "duplicates": int((counts - 1).sum()),
           "ps_row_gap": _row_gap(run, clean)}
    print(f"\nfault {label}: auc {s['auc']:.6f} (clean {c['auc']:.6f}) {gap}")
    assert s["events_in"] == s["events_trained"] == EVENTS
    assert np.array_equal(ids, np.arange(EVENTS)) and gap["duplicates"] == 0, "every event answered exactly once"
    assert gap["auc_delta"] <= AUC_TOL
    assert gap["ps_row_gap"] <= ROW_TOL
    return gap


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
