"""Ctrl-C and SIGTERM on ``flinkdl run``: the job stops, no process is left, one line and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e


def _session(sid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:  # a zombie has ended
                out.append(p)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return out


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_stops_the_run_and_its_processes(tmp_path: Path, sig: int, code: int, name: str) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--set", f"job.run_dir={run_dir}",
           "--set", "source.generator.events=null", "--set", "source.generator.max_rate_per_s=20000",
           "--set", "model.name=lr", "--set", "model.micro_batch_rows=null", "--set", "model.dense_optimizer=null",
           "--set", "job.report_every_s=1", "--set", "ps.enabled=true",  # LR's XLA step (model.xla_step auto)
           "--set", f"ps.checkpoint_dir={tmp_path / 'ps'}", "--set", "ps.address=grpc://127.0.0.1:18931"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until the job trains (TF worker and local PS are up)
            if "trained" in line or time.monotonic() > deadline:
                break
        assert len(_session(proc.pid)) > 2  # the CLI, Flink's JVM, a PS, workers/harnesses
        t0 = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # a terminal's Ctrl-C reaches the whole foreground group
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert f"flinkdl: {name}: job cancelled" in err
    time.sleep(1.0)
    assert _session(proc.pid) == [], [p.cmdline() for p in _session(proc.pid)]
    assert elapsed < 60
