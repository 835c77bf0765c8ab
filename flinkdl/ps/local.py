"""Start a local parameter server (one process, or the shards of a sharded one) for ``flinkdl run``
when ``ps.enabled`` and none answers; ``flinkdl ps start`` uses the same code."""

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
from flinkdl.ps.client import PsClient, addresses_of, read_token
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


def ensure_server(cfg: PsConfig, log_path: str | None = None) -> list[subprocess.Popen] | None:
    """Start ``flinkdl ps serve`` on ``cfg.address`` (loopback only) if needed: one process, or one
    per address of a sharded PS (``cfg.address`` a list); None if none was started."""
    if not cfg.enabled or reachable(cfg):
        return None
    urls = [urlparse(a) for a in addresses_of(cfg.address)]
    if not cfg.start_local or any(u.hostname not in LOOPBACK or u.scheme not in ("grpc", "grpc+tcp") for u in urls):
        raise RuntimeError(f"no parameter server answers at {cfg.address} (start one with `flinkdl ps serve`)")
    env = dict(os.environ)
    token = read_token(cfg)
    if token:  # the run's own server: its token may do everything, rollback included (exactly-once)
        env["FLINKDL_PS_ADMIN_TOKEN"] = token
    host = str(urls[0].hostname)
    procs, _ = start_cluster(host, [u.port or 8815 for u in urls], str(cfg.checkpoint_dir),
                             ["--retain", str(cfg.retain)], env, log_path, single=len(urls) == 1)
    return procs


def start_cluster(host: str, ports: list[int], checkpoint_dir: str, extra: list[str],
                  env: dict[str, str] | None = None, log_path: str | None = None,
                  single: bool = False) -> tuple[list[subprocess.Popen], str]:
    """Start one ``ps serve`` per port (shard k on ``ports[k]``; ``single``: one unsharded server);
    returns the processes once each has announced itself, and the ``ps.address`` that reaches them."""
    addresses = [f"grpc://{host}:{p}" for p in ports]
    procs: list[subprocess.Popen] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    err = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - kept for the children
    try:
        for k, port in enumerate(ports):
            args = [sys.executable, "-m", "flinkdl.cli", "ps", "serve", "--host", host, "--port", str(port),
                    "--checkpoint-dir", checkpoint_dir, *extra]
            if not single:
                args += ["--cluster", ",".join(addresses), "--shard-index", str(k)]
            procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                          env=env, text=True))
        for proc in procs:
            assert proc.stdout is not None  # stdout=PIPE
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                raise RuntimeError(f"a local parameter server failed to start (exit {proc.returncode}); "
                                   f"see {log_path or 'its stderr'}")
            log.info("started a local parameter server: %s", json.loads(line))
    except BaseException:
        stop_servers(procs)
        raise
    return procs, ",".join(addresses)


def require_role(cfg: PsConfig, role: str, why: str) -> None:
    """Fail at start, not at the first recovery, when ``cfg``'s token cannot do what the job needs."""
    with PsClient.from_config(cfg) as ps:
        have = ps.role()
    if ROLES.index(have) < ROLES.index(role):
        raise PsError(f"ps.token: {why}, which needs the {role} role; this token has {have} "
                      f"(the server's {ENV_VARS[role]})")


def stop_servers(procs: list[subprocess.Popen] | None) -> None:
    """Stop servers started by :func:`ensure_server` (SIGTERM; they have committed what workers committed)."""
    for proc in procs or []:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs or []:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


stop_server = stop_servers  # the name flinkdl run imports


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
