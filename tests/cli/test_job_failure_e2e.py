"""A job that fails says why in one last line (not a py4j traceback about a stopped MiniCluster)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flinkdl.runner import _worker_error

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_worker_error_is_the_last_error_line_of_the_workers_logs(tmp_path):
    (tmp_path / "worker-0.log").write_text("Traceback (most recent call last):\n  File x\nValueError: bad\n")
    assert _worker_error(tmp_path) == f"ValueError: bad ({tmp_path / 'worker-0.log'})"
    assert _worker_error(tmp_path / "none") is None


def test_a_failing_job_ends_with_its_cause(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--max-events", "5000",
                           "--set", "model.name=no.such.module:Model", "--set", f"job.run_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("flinkdl: the job failed: ValueError: model.name: cannot import 'no.such.module:Model'")
