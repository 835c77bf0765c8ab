"""The parameter server as a real process: round trips, crashes, auth, shards, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from pyarrow import flight

from flinkdl.devtools.net import free_port
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError

from .conftest import PsProcess


def _rows(n: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(1 << 40, n, replace=False).astype(np.int64)
    return ids, rng.standard_normal((n, width)).astype(np.float32)


def test_push_pull_commit_restart_restores_the_committed_version(ps_server):
    c = PsClient(ps_server.address)
    c.create_table("rt", 4, ["accum"])
    ids, delta = _rows(5000, 8, 1)
    init = np.full_like(delta, 0.5)
    c.push("rt", ids, delta, init=init)
    c.push("rt", ids[:100], delta[:100])  # delta-add on existing rows, init ignored
    want = init + delta
    want[:100] += delta[:100]
    rows, exists = c.pull("rt", ids)
    assert exists.all() and np.allclose(rows, want)
    c.dense_add({"w": np.ones((3, 2), np.float32)}, init={"w": np.full((3, 2), 2.0, np.float32)})
    v = c.commit()["version"]
    c.push("rt", ids[:10], delta[:10])  # not committed: lost on restart
    c.close()

    ps_server.restart()
    c = PsClient(ps_server.address)
    assert c.health()["base_version"] == v
    rows, exists = c.pull("rt", ids)
    assert exists.all() and np.array_equal(rows, want)
    assert np.array_equal(c.dense_get()["w"], np.full((3, 2), 3.0))
    # serving read path: the latest committed version, by id
    c.push("rt", ids[:10], delta[:10])
    served, _ = c.pull("rt", ids[:10], version="latest")
    assert np.array_equal(served, want[:10])
    absent, exists = c.pull("rt", np.array([-1, 3], np.int64))
    assert not exists.any() and not absent.any()
    c.close()


def test_an_assign_push_sets_existing_and_new_rows_and_is_committed_like_a_delta(ps_server):
    c = PsClient(ps_server.address)
    c.create_table("assign", 2, ["accum"])
    ids, delta = _rows(3000, 4, 2)
    c.push("assign", ids[:2000], delta[:2000], init=np.ones_like(delta[:2000]))
    values = np.arange(len(ids) * 4, dtype=np.float32).reshape(len(ids), 4)
    c.push("assign", ids[1000:], values[1000:], init=np.full_like(values[1000:], 9.0), assign=True)
    rows, exists = c.pull("assign", ids)
    assert exists.all()
    assert np.array_equal(rows[:1000], 1.0 + delta[:1000])  # untouched
    assert np.array_equal(rows[1000:], values[1000:])  # existing and new rows: set, init unused
    v = c.commit()["version"]
    served, _ = c.pull("assign", ids, version=v)
    assert np.array_equal(served, rows)
    c.close()


def test_incremental_versions_compaction_retention_and_rollback(tmp_path):
    server = PsProcess(tmp_path / "ck", "--retain", "2", "--compact-after", "2")
    try:
        c = PsClient(server.address)
        c.create_table("t", 2)
        ids, delta = _rows(1000, 2, 2)
        c.push("t", ids, delta)
        first = c.commit()
        assert first["kind"] == "snapshot" and first["rows"] == 1000
        states = {first["version"]: c.pull("t", ids)[0]}
        for k in range(5):
            c.push("t", ids[k * 10:(k + 1) * 10], np.ones((10, 2), np.float32))
            m = c.commit()
            assert m["kind"] == "delta" and m["rows"] == 10  # only the changed rows
            states[m["version"]] = c.pull("t", ids)[0]
        versions = [v["version"] for v in c.versions()]
        assert versions[-2:] == [5, 6] and len(versions) <= 4  # retained: last 2 + their chains
        rb = versions[-2]
        c.rollback(rb)
        assert np.array_equal(c.pull("t", ids)[0], states[rb])
        c.push("t", ids[:1], np.ones((1, 2), np.float32))
        after = c.commit()
        assert after["parent"] == rb
        c.close()
        server.restart()
        c = PsClient(server.address)
        expect = states[rb].copy()
        expect[0] += 1
        assert np.array_equal(c.pull("t", ids)[0], expect)
        c.close()
    finally:
        server.stop()


def test_kill9_during_pushes_keeps_the_last_committed_version(tmp_path):
    server = PsProcess(tmp_path / "ck", "--compact-after", "3")
    c = PsClient(server.address)
    c.create_table("k", 16)
    ids = np.arange(200_000, dtype=np.int64) * 7919
    ones = np.ones((len(ids), 16), np.float32)
    acked: list[tuple[int, int]] = []  # (version, pushes before it)
    stop = threading.Event()

    def load() -> None:
        pushes = 0
        try:
            while not stop.is_set():
                c.push("k", ids, ones)
                pushes += 1
                if pushes % 2 == 0:
                    acked.append((c.commit()["version"], pushes))
        except (flight.FlightError, PsError, OSError):
            pass

    t = threading.Thread(target=load)
    t.start()
    while len(acked) < 3:
        t.join(0.05)
    server.kill9()
    stop.set()
    t.join()
    server.start()
    c = PsClient(server.address)
    h = c.health()
    last_acked, _ = acked[-1]
    assert h["base_version"] in (last_acked, last_acked + 1)  # a commit may land without its answer
    pushes_at = dict(acked).get(h["base_version"], acked[-1][1] + 2)
    rows, exists = c.pull("k", ids)
    assert exists.all() and np.array_equal(rows, np.full_like(ones, pushes_at))
    # nothing half-written is visible or left behind
    ck = tmp_path / "ck"
    manifests = {p.name for p in (ck / "manifests").iterdir()}
    assert all(not n.startswith(".") for n in manifests)
    assert {p.name for p in (ck / "data").iterdir()} <= {n.replace(".json", "") for n in manifests}
    c.close()
    server.stop()


def test_a_half_written_version_is_never_visible(tmp_path):
    server = PsProcess(tmp_path / "ck")
    c = PsClient(server.address)
    c.create_table("h", 2)
    c.push("h", np.arange(3), np.ones((3, 2), np.float32))
    assert c.commit()["version"] == 1
    c.close()
    server.stop()
    # What a crash mid-commit leaves: data of version 2 and a manifest never moved into place.
    ck = tmp_path / "ck"
    shutil.copytree(ck / "data" / "v00000001", ck / "data" / "v00000002")
    (ck / "manifests" / ".v00000002.abc.tmp").write_text('{"version": 2, "trunc')
    server.start()
    c = PsClient(server.address)
    assert [v["version"] for v in c.versions()] == [1] and c.health()["base_version"] == 1
    assert not (ck / "data" / "v00000002").exists()
    assert c.commit()["version"] == 2
    c.close()
    server.stop()


def test_token_is_required_on_every_call(tmp_path):
    server = PsProcess(None, env={"FLINKDL_PS_TOKEN": "s3cret"})
    try:
        with pytest.raises(flight.FlightUnauthenticatedError):
            PsClient(server.address)
        with pytest.raises(flight.FlightUnauthenticatedError):
            PsClient(server.address, token="wrong")
        c = PsClient(server.address, token="s3cret")
        c.create_table("a", 1)
        c.push("a", np.arange(2), np.ones((2, 1), np.float32))
        raw = flight.connect(server.address)
        with pytest.raises(flight.FlightUnauthenticatedError):
            raw.do_get(flight.Ticket(b'{"table": "a", "shard": 0}\n' + np.arange(2).tobytes())).read_all()
        raw.close()
        c.close()
    finally:
        server.stop()


def _counter(port: int, reason: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    rows = [line for line in text.splitlines()
            if line.startswith("flinkdl_ps_server_auth_refused_total{") and f'reason="{reason}"' in line]
    return sum(float(line.rsplit(" ", 1)[1]) for line in rows)


def test_roles_refuse_what_they_may_not_do_and_count_it(tmp_path):
    metrics_port = free_port()
    tokens = {"FLINKDL_PS_TOKEN": "w-tok", "FLINKDL_PS_READ_TOKEN": "r-tok", "FLINKDL_PS_ADMIN_TOKEN": "a-tok"}
    server = PsProcess(tmp_path / "ck", "--metrics-port", str(metrics_port), env=tokens)
    try:
        writer, reader, admin = (PsClient(server.address, token=t) for t in ("w-tok", "r-tok", "a-tok"))
        assert (writer.role(), reader.role(), admin.role()) == ("write", "read", "admin")
        writer.create_table("a", 1)
        writer.push("a", np.arange(3), np.ones((3, 1), np.float32))
        v1 = writer.commit()["version"]
        # read-only: pulls and describes, but may not push, create, commit or roll back
        np.testing.assert_array_equal(reader.pull("a", np.arange(3))[0][:, 0], [1, 1, 1])
        assert reader.describe("a")["dim"] == 1
        for call in (lambda: reader.push("a", np.arange(1), np.ones((1, 1), np.float32)),
                     lambda: reader.create_table("b", 2), reader.commit, lambda: reader.rollback(v1)):
            with pytest.raises(PsError, match="permission denied"):
                call()
        # write: may not roll back; admin may
        writer.push("a", np.arange(1), np.ones((1, 1), np.float32))
        writer.commit()
        with pytest.raises(PsError, match="permission denied: a write token may not rollback"):
            writer.rollback(v1)
        admin.rollback(v1)
        np.testing.assert_array_equal(reader.pull("a", np.arange(3))[0][:, 0], [1, 1, 1])
        with pytest.raises(flight.FlightUnauthenticatedError):
            PsClient(server.address, token="guess")
        assert _counter(metrics_port, "permission_denied") == 5
        assert _counter(metrics_port, "unauthenticated") >= 1
        for c in (writer, reader, admin):
            c.close()
    finally:
        server.stop()


def test_non_loopback_bind_without_token_is_refused(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "flinkdl.cli", "ps", "serve", "--host", "0.0.0.0",
                              "--port", str(free_port())], capture_output=True, text=True, timeout=60, check=False,
                             env={k: v for k, v in os.environ.items() if not k.startswith("FLINKDL_PS_")})
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 without a token" in refused.stderr and "--insecure" in refused.stderr
    on_cmdline = subprocess.run([sys.executable, "-m", "flinkdl.cli", "ps", "serve", "--token", "s3cret"],
                                capture_output=True, text=True, timeout=60, check=False)
    assert on_cmdline.returncode == 2 and "FLINKDL_PS_TOKEN" in on_cmdline.stderr
    # the explicit opt-out serves, and says so
    server = PsProcess(None, "--host", "0.0.0.0", "--insecure")
    try:
        assert PsClient(server.address).role() == "admin"
        assert "no token (--insecure)" in Path(server.log.name).read_text()
    finally:
        server.stop()


def test_one_and_two_shards_give_identical_results(tmp_path):
    one, two = PsProcess(tmp_path / "one"), PsProcess(tmp_path / "two", "--shards", "2")
    try:
        clients = [PsClient(one.address), PsClient(two.address)]
        assert [c.shards for c in clients] == [1, 2]
        rng = np.random.default_rng(3)
        pool = rng.integers(-(1 << 62), 1 << 62, 3000)
        for c in clients:
            c.create_table("s", 3, ["slot"])
        for step in range(6):
            ids = rng.choice(pool, 800)  # duplicates within a push add up
            delta = rng.standard_normal((800, 6)).astype(np.float32)
            for c in clients:
                c.push("s", ids, delta, init=np.full_like(delta, step))
        got = [c.pull("s", pool) for c in clients]
        assert np.array_equal(got[0][0], got[1][0]) and np.array_equal(got[0][1], got[1][1])
        assert 0 < got[1][1].sum() < len(pool)
        rows_per_shard = clients[1].describe("s")["rows_per_shard"]
        assert len(rows_per_shard) == 2 and min(rows_per_shard) > 0
        for c in clients:
            c.commit()
            c.close()
        two.restart()
        c = PsClient(two.address)
        assert np.array_equal(c.pull("s", pool)[0], got[0][0])
        c.close()
    finally:
        one.stop()
        two.stop()


def test_bad_input_is_refused_with_a_clear_error_and_nothing_applied(ps_server):
    c = PsClient(ps_server.address)
    c.create_table("bad", 2)
    ids = np.arange(4, dtype=np.int64)
    c.push("bad", ids, np.ones((4, 2), np.float32))
    before = c.pull("bad", ids)[0]
    nan = np.ones((4, 2), np.float32)
    nan[3, 1] = np.nan
    inf = np.ones((4, 2), np.float32)
    inf[0, 0] = np.inf
    cases = [
        (lambda: c.push("nope", ids, before), "unknown table 'nope'"),
        (lambda: c.push("bad", ids, np.ones((4, 3), np.float32)), "width"),
        (lambda: c.push("bad", ids, nan), "NaN or infinite"),
        (lambda: c.push("bad", ids, inf), "NaN or infinite"),
        (lambda: c.pull("nope", ids), "unknown table"),
        (lambda: c.rollback(9999), "unknown version 9999"),
        (lambda: c.pull("bad", ids, version=9999), "unknown version 9999"),
        (lambda: c.create_table("bad", 3), "exists with dim 2"),
        (lambda: c.dense_add({"d": np.array([np.nan], np.float32)}), "NaN or infinite"),
    ]
    for call, message in cases:
        with pytest.raises(PsError, match=message):
            call()
    assert np.array_equal(c.pull("bad", ids)[0], before)
    assert "d" not in c.dense_get()
    c.close()


def test_tls_certificates_are_used(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        pytest.skip(f"openssl unavailable: {e}")
    server = PsProcess(None, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        c = PsClient(f"grpc+tls://127.0.0.1:{server.port}", tls_root_certs=Path(cert).read_bytes())
        assert c.health()["ok"]
        c.close()
        with pytest.raises(flight.FlightUnavailableError):
            PsClient(server.address)  # plaintext to a TLS server
    finally:
        server.stop()
