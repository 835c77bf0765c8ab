"""Fault matrix on the embedded mini-cluster: kill -9 mid-stream, the job recovers by itself and
ends where an uncrashed run ends (exactly-once mode, docs/EXACTLY_ONCE.md).

One clean run and one run per fault, all on the same throttled stream (tests/faults.py), each with
its own real parameter server (``flinkdl ps serve``). Killed with SIGKILL a third into the stream:

- ``worker``: the TF worker process (recovered in place by the trainer operator);
- ``harness``: the Flink Python process hosting the trainer (``job.python_harness: process``, as
  on a cluster; the task fails and Flink restarts the job from the last checkpoint);
- ``ps``: the parameter server, started again a second later on the same port and versions.

The model is DeepFM; LR with its XLA-compiled step (``model.xla_step: auto``) has a clean run and a
worker kill of its own.

Each run must answer every event exactly once in the prediction file, match the clean run's
progressive AUC within 0.002 and leave the PS with the clean run's rows (within ``ROW_TOL``).
The TaskManager fault is in tests/cluster/test_lifecycle.py (it needs a standalone cluster).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.faults import Job, assert_mid_stream, compare, outcome, overrides, wait_predictions, worker_pid
from tests.ps.conftest import PsProcess

pytestmark = pytest.mark.e2e


def kill_worker(run_dir: Path, ps: PsProcess, job: Job) -> dict:
    pid = worker_pid(run_dir, job=job)
    wait_predictions(run_dir, job=job)
    assert_mid_stream(run_dir)
    psutil.Process(pid).send_signal(signal.SIGKILL)
    return {"killed": pid, "new_worker": worker_pid(run_dir, not_pid=pid, job=job)}


def kill_harness(run_dir: Path, ps: PsProcess, job: Job) -> dict:
    worker = worker_pid(run_dir, job=job)
    harness = psutil.Process(worker).parent()
    wait_predictions(run_dir, job=job)
    assert_mid_stream(run_dir)
    harness.send_signal(signal.SIGKILL)
    new = worker_pid(run_dir, not_pid=worker, job=job)
    return {"killed": harness.pid, "new_harness": psutil.Process(new).parent().pid}


def kill_ps(run_dir: Path, ps: PsProcess, job: Job) -> dict:
    wait_predictions(run_dir, job=job)
    assert_mid_stream(run_dir)
    pid = ps.proc.pid
    ps.kill9()
    time.sleep(1.0)
    ps.start()
    return {"killed": pid, "restarted": ps.proc.pid}


def _run(base: Path, name: str, fault: Callable[[Path, PsProcess, Job], dict] | None,
         more: tuple[str, ...] = ()) -> dict:
    run_dir, ps = base / name, PsProcess(base / f"{name}-ps-versions")
    sets = [a for o in [*overrides(run_dir, ps.address), *more] for a in ("--set", o)]
    job = Job(["run", "jobs/click_stream.yaml", *sets, "--summary", str(run_dir / "summary.json")],
              base / f"{name}.log")
    try:
        injected = fault(run_dir, ps, job) if fault else {}
        job.wait(400)
        out = outcome(run_dir, ps.address, json.loads((run_dir / "summary.json").read_text()))
    finally:
        job.kill()
        ps.stop()
    return {**out, "injected": injected}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def clean(base) -> dict:
    return _run(base, "clean", None)


@pytest.mark.parametrize("fault", [kill_worker, kill_harness, kill_ps], ids=["worker", "harness", "ps"])
def test_kill_9_recovers_exactly_once(base, clean, fault):
    run = _run(base, fault.__name__, fault)
    killed = run["injected"]["killed"]
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    compare(run, clean, f"{fault.__name__} {run['injected']}")


#: LR as bench/anchors.py runs it: one adagrad optimizer, one step a batch, so auto takes its XLA step
XLA_LR = ("model.name=lr", "model.micro_batch_rows=null", "model.dense_optimizer=null")


def test_lr_xla_step_kill_9_of_the_worker_recovers_exactly_once(base):
    clean = _run(base, "lr-clean", None, XLA_LR)
    compare(_run(base, "lr-worker", kill_worker, XLA_LR), clean, "lr xla_step worker")
