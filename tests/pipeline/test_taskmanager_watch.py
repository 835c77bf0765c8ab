"""A harness exits once its TaskManager JVM dies (real processes: a shell renamed ``java`` stands in
for the TaskManager; the harness is a Python child of a runner script under it, as on a cluster)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from flinkdl.pipeline.taskmanager_watch import EXIT_TASKMANAGER_GONE, jvm_ancestor

HARNESS = """
import logging, os, sys, threading, time
from flinkdl.pipeline.taskmanager_watch import exit_with_taskmanager
class Stuck(logging.Handler):  # as the gRPC log handler of Beam once its TaskManager is gone
    def emit(self, record): threading.Event().wait()
logging.getLogger().addHandler(Stuck())
jvm = exit_with_taskmanager(poll_s=0.05)
assert exit_with_taskmanager(poll_s=0.05) == jvm  # once per process
print(jvm, os.getpid(), flush=True)
time.sleep(60)
"""


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def test_harness_exits_when_its_taskmanager_is_killed(tmp_path: Path) -> None:
    java = tmp_path / "java"  # the "TaskManager": its comm is "java"
    shutil.copy(shutil.which("bash"), java)
    # java → runner script (bash) → harness (python): the runner outlives the JVM, as pyflink-udf-runner.sh does
    runner = f"{sys.executable} -c '{HARNESS}'; sleep 60"
    tm = subprocess.Popen([str(java), "-c", f"bash -c \"{runner}\" & wait"], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        jvm, harness = map(int, tm.stdout.readline().split())
        assert jvm == tm.pid  # the harness found its JVM ancestor, two levels up
        os.kill(tm.pid, signal.SIGKILL)
        tm.wait()
        assert _wait_gone(harness, 5.0), "the harness outlived its TaskManager"
    finally:
        tm.kill()
        if not _wait_gone(harness, 0):
            os.kill(harness, signal.SIGKILL)


def test_no_jvm_ancestor_in_the_client_process() -> None:
    assert jvm_ancestor() is None  # pytest: no java above us, so loopback mode watches nothing
    assert EXIT_TASKMANAGER_GONE != 0
