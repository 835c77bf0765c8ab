"""A Python harness exits when the TaskManager that started it dies.

On a cluster each TaskManager starts a Beam harness per slot (``pyflink-udf-runner.sh`` →
``beam_boot``) that runs the job's Python operators. Killed with SIGKILL, the TaskManager takes
nothing with it: the runner script is re-parented to init and the harness, still its child, would
idle on a dead gRPC channel for ever, holding the TF worker it started. Every operator's ``open`` calls
:func:`exit_with_taskmanager`; the first call finds the ``java`` ancestor of this process and
watches it; once it is gone the harness exits, and its TF worker follows
(:func:`flinkdl.worker.process.exit_with_parent`).

In loopback mode (the embedded mini-cluster) the operators run in the client process, whose JVM
is its child, not an ancestor: nothing is watched there.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

#: Exit status of a harness whose TaskManager died.
EXIT_TASKMANAGER_GONE = 4

_watched: tuple[int, str] | None = None
_lock = threading.Lock()


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of ``pid`` from ``/proc``, ``None`` once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]  # fields 4 (ppid) and 22 (starttime) of proc(5)


def jvm_ancestor(pid: int | None = None) -> tuple[int, str] | None:
    """(pid, start time) of the nearest ancestor of ``pid`` (default: this process) named ``java``."""
    pid = os.getpid() if pid is None else pid
    while pid > 1:
        st = _stat(pid)
        if st is None:
            return None
        pid = st[0]
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                jvm = _stat(pid)
                return None if jvm is None else (pid, jvm[1])
        except FileNotFoundError:
            return None
    return None


def _alive(jvm: tuple[int, str]) -> bool:
    st = _stat(jvm[0])
    return st is not None and st[1] == jvm[1]  # same start time: not a reused pid


def exit_with_taskmanager(poll_s: float = 1.0) -> int | None:
    """Watch this process's TaskManager JVM once per process; exit when it is gone.

    Returns the watched JVM's pid (``None``: no ``java`` ancestor, nothing watched)."""
    global _watched
    with _lock:
        if _watched is not None:
            return _watched[0]
        jvm = jvm_ancestor()
        if jvm is None:
            return None
        _watched = jvm

    def watch() -> None:
        while _alive(jvm):
            time.sleep(poll_s)
        # No logging on the way out: Beam's log handler sends over gRPC to the dead TaskManager
        # and can block this thread for good; the exit status says why.
        os._exit(EXIT_TASKMANAGER_GONE)

    threading.Thread(target=watch, name="exit-with-taskmanager", daemon=True).start()
    return jvm[0]
