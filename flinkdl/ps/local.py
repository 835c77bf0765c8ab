"""Start a local parameter server for ``flinkdl run`` when ``ps.enabled`` and none answers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from pyarrow import flight

from flinkdl.config.schema import PsConfig
from flinkdl.ps.auth import ENV_VARS, ROLES
from flinkdl.ps.client import PsClient, read_token
from flinkdl.ps.errors import PsError

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def reachable(cfg: PsConfig) -> bool:
    """Whether a parameter server answers at ``cfg.address`` (a wrong token raises)."""
    try:
        PsClient.from_config(cfg, connect_timeout_s=0).close()
        return True
    except flight.FlightUnavailableError:
        return False


def ensure_server(cfg: PsConfig, log_path: str | None = None) -> subprocess.Popen | None:
    """Start ``flinkdl ps serve`` on ``cfg.address`` (loopback only) if needed; None if not started."""
    if not cfg.enabled or reachable(cfg):
        return None
    url = urlparse(cfg.address if "://" in cfg.address else f"grpc://{cfg.address}")
    if not cfg.start_local or url.hostname not in LOOPBACK or url.scheme not in ("grpc", "grpc+tcp"):
        raise RuntimeError(f"no parameter server answers at {cfg.address} (start one with `flinkdl ps serve`)")
    env = dict(os.environ)
    token = read_token(cfg)
    if token:  # the run's own server: its token may do everything, rollback included (exactly-once)
        env["FLINKDL_PS_ADMIN_TOKEN"] = token
    err = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - kept for the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "flinkdl.cli", "ps", "serve", "--host", url.hostname, "--port", str(url.port or 8815),
         "--checkpoint-dir", str(cfg.checkpoint_dir), "--retain", str(cfg.retain)],
        stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env, text=True)
    assert proc.stdout is not None  # stdout=PIPE
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"the local parameter server failed to start (exit {proc.returncode}); see {log_path}")
    log.info("started a local parameter server: %s", json.loads(line))
    return proc


def require_role(cfg: PsConfig, role: str, why: str) -> None:
    """Fail at start, not at the first recovery, when ``cfg``'s token cannot do what the job needs."""
    with PsClient.from_config(cfg) as ps:
        have = ps.role()
    if ROLES.index(have) < ROLES.index(role):
        raise PsError(f"ps.token: {why}, which needs the {role} role; this token has {have} "
                      f"(the server's {ENV_VARS[role]})")


def stop_server(proc: subprocess.Popen | None) -> None:
    """Stop a server started by :func:`ensure_server` (SIGTERM; it has committed what workers committed)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: Name pattern of the file each worker writes after its final push (see ``PsSync.close``).
FINAL_REPORT = "ps-final-{pid}.json"


def wait_final_pushes(run_dir: Path, workers: int, timeout_s: float = 60.0) -> list[dict]:
    """Wait until ``workers`` workers reported their final push (Flink may report a job finished
    before its Python operators' workers have exited); returns the reports."""
    deadline = time.monotonic() + timeout_s
    while True:
        paths = sorted(Path(run_dir).glob(FINAL_REPORT.format(pid="*")))
        if len(paths) >= workers or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if len(paths) < workers:
        log.warning("only %d of %d workers reported their final parameter-server push", len(paths), workers)
    return [json.loads(p.read_text()) for p in paths]
