"""A real ``flinkdl ps serve`` process for the parameter-server tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flinkdl.devtools.net import free_port

ROOT = Path(__file__).resolve().parents[2]


class PsProcess:
    """``python -m flinkdl.cli ps serve ...`` on a free loopback port; restartable, killable."""

    def __init__(self, checkpoint_dir: Path | None = None, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.checkpoint_dir = checkpoint_dir
        self.extra = list(extra)
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> dict:
        args = [sys.executable, "-m", "flinkdl.cli", "ps", "serve", "--port", str(self.port), *self.extra]
        if self.checkpoint_dir is not None:
            args += ["--checkpoint-dir", str(self.checkpoint_dir)]
        # stderr goes to a file: a pipe nobody reads would block the server once 64 KB of logs fill it
        self.log = tempfile.NamedTemporaryFile(prefix="ps-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"ps serve failed: {Path(self.log.name).read_text()[-3000:]}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def restart(self) -> dict:
        self.stop()
        return self.start()

    def kill9_restart(self) -> None:
        """kill -9, then start again on the same port and checkpoint directory."""
        self.kill9()
        self.start()


@pytest.fixture(scope="module")
def ps_server(tmp_path_factory):
    """One server with a checkpoint directory, shared by a test module."""
    server = PsProcess(tmp_path_factory.mktemp("ps-ckpt"))
    yield server
    server.stop()


class ShardedPs:
    """A sharded PS of ``n`` real ``ps serve --cluster ... --shard-index k`` processes on loopback."""

    def __init__(self, n: int, checkpoint_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        ports = [free_port() for _ in range(n)]
        self.addresses = [f"grpc://127.0.0.1:{p}" for p in ports]
        cluster = ",".join(self.addresses)
        self.shards = [_Shard(p, checkpoint_dir, "--cluster", cluster, "--shard-index", str(k), *extra, env=env)
                       for k, p in enumerate(ports)]

    @property
    def address(self) -> str:
        return ",".join(self.addresses)

    def stop(self) -> None:
        for s in self.shards:
            s.stop()

    def kill9_restart(self) -> None:
        """kill -9 of every shard, then every shard started again."""
        for s in self.shards:
            s.kill9()
        for s in self.shards:
            s.start()


def ps_of(shards: int, checkpoint_dir: Path) -> PsProcess | ShardedPs:
    """One server (``shards`` 1) or a sharded PS of ``shards`` processes."""
    return PsProcess(checkpoint_dir) if shards == 1 else ShardedPs(shards, checkpoint_dir)


class _Shard(PsProcess):
    def __init__(self, port: int, checkpoint_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self._fixed_port = port
        super().__init__(checkpoint_dir, *extra, env=env)

    def start(self) -> dict:
        self.port = self._fixed_port
        return super().start()
