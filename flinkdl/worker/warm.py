"""Warm TF workers: started by ``flinkdl run`` before Flink, so ``import tensorflow`` overlaps Flink's start-up.

A warm worker (``python -m flinkdl.worker --warm SOCKET``, with the run's ``FLINKDL_RUN_DIR`` and
``FLINKDL_SUBTASK`` in its environment, as a fresh worker has) imports TensorFlow, tensorflow-io and the
worker loop, then listens on the unix socket ``SOCKET`` (``FLINKDL_WARM_DIR/worker-<subtask>.sock``).
The supervisor of that subtask claims the socket (a rename: one claimant only), reads the worker's
pid, sends one JSON line ``{"config", "in", "out", "parent", "subtask", "run_dir"}`` and from then
on treats the process as its worker (:class:`Adopted`). The worker then runs exactly as a freshly
started one, except that it exits when ``parent`` (the supervisor's process) does, not its own
parent (the runner). A restart, a cluster run, or a missing/unanswering warm worker starts a fresh
process as before. Opt-in (``FLINKDL_WARM_WORKERS=1``) until it is measured to help (docs/BENCHMARKS.md);
an exactly-once job never uses it (there the worker stays the child of the Flink Python process,
whose death it must not outlive).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ENV_DIR = "FLINKDL_WARM_DIR"
ENV_SWITCH = "FLINKDL_WARM_WORKERS"


def socket_path(directory: str | Path, subtask: int) -> Path:
    return Path(directory) / f"worker-{subtask}.sock"


def _pid_path(directory: str | Path, subtask: int) -> Path:
    return Path(directory) / f"worker-{subtask}.pid"


def _wait_ready(directory: str, subtask: int, wait_s: float) -> bool:
    """Whether subtask's warm worker listens, waiting while it still imports (up to ``wait_s``)."""
    path, deadline = socket_path(directory, subtask), time.monotonic() + wait_s
    while not path.exists():
        try:
            pid = int(_pid_path(directory, subtask).read_text())
        except (OSError, ValueError):
            return False
        if not _alive(pid) or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Adopted:
    """The ``Popen`` calls the supervisor makes, for a worker it did not start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not _alive(self.pid):
            self.returncode = -1  # not our child: its exit status is its parent's to read
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker pid {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        return self.returncode or 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def claim(subtask: int, config_json: str, in_endpoint: str, out_path: str, run_dir: str,
          timeout_s: float = 5.0, wait_s: float = 30.0) -> Adopted | None:
    """Hand subtask ``subtask``'s warm worker its session; None when there is none to claim.
    (``run_dir`` and ``subtask`` must be those the runner started it with.)"""
    directory = os.environ.get(ENV_DIR)
    if not directory or not _wait_ready(directory, subtask, wait_s):
        return None
    path = socket_path(directory, subtask)
    mine = path.with_name(f"{path.name}.claimed-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(path, mine)  # atomic: a second claimant finds nothing
    except OSError:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(mine))
            f = s.makefile("rwb")
            pid = int(f.readline())
            session = {"config": config_json, "in": in_endpoint, "out": out_path, "parent": os.getpid(),
                       "subtask": subtask, "run_dir": run_dir}
            f.write(json.dumps(session).encode() + b"\n")
            f.flush()
            if f.readline().strip() != b"ok":
                return None
    except (OSError, ValueError):
        return None
    else:
        with contextlib.suppress(OSError):
            _pid_path(directory, subtask).unlink()  # claimed: not the runner's to kill any more
    finally:
        with contextlib.suppress(OSError):
            mine.unlink()
    return Adopted(pid)


class WarmWorkers:
    """The warm workers of one ``flinkdl run`` (one per subtask), started now; :meth:`close` ends
    the ones nobody claimed (a claimed one ends with its stream)."""

    def __init__(self, parallelism: int, run_dir: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flinkdl-warm-"))
        self.procs: list[subprocess.Popen] = []
        run_dir.mkdir(parents=True, exist_ok=True)
        for i in range(parallelism):
            with open(run_dir / f"worker-{i}.log", "ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "flinkdl.worker", "--warm", str(socket_path(self.dir, i))],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env={**os.environ, "FLINKDL_SUBTASK": str(i), "FLINKDL_RUN_DIR": str(run_dir)}))
            _pid_path(self.dir, i).write_text(str(self.procs[-1].pid))
        os.environ[ENV_DIR] = str(self.dir)  # the supervisors (in this process or a harness) look here

    @classmethod
    def maybe(cls, parallelism: int, run_dir: Path, exactly_once: bool = False) -> WarmWorkers | None:
        """Warm workers if ``FLINKDL_WARM_WORKERS=1`` and the job is not ``exactly_once``."""
        if exactly_once or os.environ.get(ENV_SWITCH, "0") != "1":
            return None
        return cls(parallelism, run_dir)

    def close(self) -> None:
        """Kill the warm workers nobody claimed (a claimed one ends with its stream, or its supervisor)."""
        os.environ.pop(ENV_DIR, None)
        for i, p in enumerate(self.procs):
            if _pid_path(self.dir, i).exists() and p.poll() is None:
                p.kill()
                p.wait()
        for f in self.dir.iterdir():
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def _exit_with(pid: int, poll_s: float = 0.5) -> None:
    """Exit at once when ``pid`` (the claiming supervisor's process) is gone."""
    def watch() -> None:
        while _alive(pid):
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-supervisor", daemon=True).start()


def _exit_with_runner(poll_s: float = 0.5) -> None:
    """Before it is claimed: exit when the runner that started it is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-runner", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m flinkdl.worker --warm SOCKET", file=sys.stderr)
        return 2
    _exit_with_runner()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow  # noqa: F401  # the slow part, done while Flink starts

    from flinkdl.worker import process

    path = argv[0]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.tmp"
    srv.bind(tmp)
    srv.listen(1)
    os.rename(tmp, path)  # appears only once it listens
    conn, _ = srv.accept()
    srv.close()
    f = conn.makefile("rwb")
    f.write(f"{os.getpid()}\n".encode())
    f.flush()
    session = json.loads(f.readline())
    f.write(b"ok\n")
    f.flush()
    conn.close()
    _exit_with(int(session["parent"]))
    from flinkdl.config.schema import JobConfig

    process.serve(JobConfig.model_validate_json(session["config"]), session["in"], session["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
