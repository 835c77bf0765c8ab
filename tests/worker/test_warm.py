"""A warm worker (TensorFlow imported before it is needed) is claimed by the supervisor's first start."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import psutil

from flinkdl.worker import warm
from flinkdl.worker.supervisor import WorkerSupervisor
from tests.worker.test_supervisor import ROWS, _batches, _config


def test_first_start_claims_the_warm_worker_a_restart_starts_a_fresh_one(tmp_path, monkeypatch):
    monkeypatch.delenv(warm.ENV_DIR, raising=False)
    cfg = _config(tmp_path)
    workers = warm.WarmWorkers(1, tmp_path)
    sup = WorkerSupervisor(cfg)
    try:
        assert os.environ[warm.ENV_DIR] == str(workers.dir)
        sup.start()  # waits while the warm worker still imports TensorFlow
        assert isinstance(sup._proc, warm.Adopted) and sup.pid == workers.procs[0].pid
        seen_from_outside = psutil.Process(sup.pid)  # as tests/faults.py and bench/procs.py find a worker
        assert "flinkdl.worker" in seen_from_outside.cmdline()
        assert seen_from_outside.environ()["FLINKDL_RUN_DIR"] == str(tmp_path)
        seen = []
        for i, payload in enumerate(_batches(cfg, 4)):
            if i == 2:
                os.kill(sup.pid, signal.SIGKILL)  # the adopted worker dies: a fresh process takes over
            out, _ = sup.process(payload, ROWS)
            seen.append(out.column("event_id").to_numpy())
        assert sup.restarts == 1 and not isinstance(sup._proc, warm.Adopted)
        assert np.array_equal(np.concatenate(seen), np.arange(4 * ROWS))
    finally:
        sup.stop()
        workers.close()
    assert warm.ENV_DIR not in os.environ and not workers.dir.exists()


def test_unclaimed_warm_workers_are_killed_and_nothing_is_claimed_without_them(tmp_path, monkeypatch):
    monkeypatch.delenv(warm.ENV_DIR, raising=False)
    monkeypatch.delenv(warm.ENV_SWITCH, raising=False)
    assert warm.WarmWorkers.maybe(1, tmp_path) is None  # opt-in
    monkeypatch.setenv(warm.ENV_SWITCH, "1")
    assert warm.WarmWorkers.maybe(1, tmp_path, exactly_once=True) is None  # the worker stays the harness's child
    assert warm.claim(0, "{}", "unix:///x", "/x", str(tmp_path)) is None  # no warm directory: start as before
    workers = warm.WarmWorkers(2, tmp_path)
    assert warm.claim(5, "{}", "unix:///x", "/x", str(tmp_path), wait_s=0.1) is None  # none for subtask 5
    workers.close()
    deadline = time.monotonic() + 10
    while any(p.poll() is None for p in workers.procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(p.poll() is not None for p in workers.procs)
