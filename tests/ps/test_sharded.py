"""A sharded parameter server of several real processes on loopback: one version across shards,
restore, rollback, compaction, a shard killed mid-commit, fencing of stale writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from pyarrow import flight

from flinkdl.ps.client import PsClient
from flinkdl.ps.commits import restore_cluster
from flinkdl.ps.errors import PsError
from flinkdl.ps.wire import shard_of

from .conftest import PsProcess, ShardedPs


def _rows(n: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(1 << 40, n, replace=False).astype(np.int64)
    return ids, rng.standard_normal((n, width)).astype(np.float32)


@pytest.fixture()
def cluster(tmp_path):
    ps = ShardedPs(3, tmp_path / "ck", "--compact-after", "2", "--retain", "3")
    yield ps
    ps.stop()


def test_one_version_across_shards_restore_rollback_compaction_export(cluster, tmp_path):
    c = PsClient(cluster.address)
    assert c.shards == 3
    c.create_table("t", 2, ["acc"])
    ids, delta = _rows(3000, 4, 1)
    assert set(shard_of(ids, 3).tolist()) == {0, 1, 2}
    c.push("t", ids, delta, init=np.full_like(delta, 0.5))
    c.dense_add({"w": np.ones(3, np.float32)})
    states = {}
    for step in range(5):
        c.push("t", ids[step * 10:step * 10 + 600], np.full((600, 4), step, np.float32))
        m = c.commit()
        states[m["version"]] = c.pull("t", ids)[0]
        assert m["rows"] == (3000 if step == 0 else 600)
    v = max(states)
    deadline = time.monotonic() + 10  # compaction and retention run in the background on each shard
    while [x["version"] for x in c.versions()] != sorted(states)[-3:] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [x["version"] for x in c.versions()] == sorted(states)[-3:]
    assert c.describe("t")["rows"] == 3000 and len(c.describe("t")["rows_per_shard"]) == 3
    c.push("t", ids[:5], np.ones((5, 4), np.float32))  # uncommitted: gone after the restart
    c.close()

    for s in cluster.shards:
        s.restart()
    c = PsClient(cluster.address)
    assert {h["base_version"] for h in (c._json("health", None, k) for k in range(3))} == {v}
    assert np.array_equal(c.pull("t", ids)[0], states[v])
    assert np.array_equal(c.dense_get()["w"], np.ones(3))
    kinds = [x["kind"] for x in c.versions()]
    assert "snapshot" in kinds[1:] or all(k == "snapshot" for k in kinds), kinds

    c.rollback(v - 1)
    assert np.array_equal(c.pull("t", ids)[0], states[v - 1])
    served, _ = c.pull("t", ids, version="latest")
    assert np.array_equal(served, states[v])
    m = c.commit()
    assert m["version"] == v + 1 and m["parent"] == v - 1

    state = restore_cluster(str(tmp_path / "ck"), v)  # what `ps export` reads, no server involved
    got = dict(zip(np.concatenate([r[0] for r in state.rows.values()]).tolist(),
                   np.concatenate([r[1] for r in state.rows.values()]).tolist(), strict=True))
    assert np.array_equal(np.array([got[i] for i in ids.tolist()], np.float32), states[v])
    c.close()


def test_a_shard_killed_mid_commit_leaves_the_last_complete_version(cluster):
    c = PsClient(cluster.address)
    c.create_table("t", 4)
    ids, delta = _rows(2000, 4, 2)
    c.push("t", ids, delta)
    v1 = c.commit()["version"]
    want = c.pull("t", ids)[0]
    c.push("t", ids, np.ones_like(delta))

    victim = cluster.shards[2]
    victim.proc.send_signal(signal.SIGSTOP)  # its prepare hangs: shard 0 and 1 have prepared meanwhile
    failed: list[Exception] = []
    t = threading.Thread(target=lambda: _catch(c.commit, failed))
    t.start()
    time.sleep(1.0)
    victim.kill9()
    t.join(60)
    assert failed and "nothing committed" in str(failed[0]), failed
    victim.start()
    assert [x["version"] for x in c.versions()] == [v1]
    with pytest.raises(PsError, match="restarted"):  # this client's pushes to shard 2 died with it
        c.push("t", ids, delta)
    c.close()

    for s in cluster.shards:  # a cold start of every shard restores v1 everywhere
        s.kill9()
        s.start()
    c = PsClient(cluster.address)
    assert np.array_equal(c.pull("t", ids)[0], want)
    c.push("t", ids, np.ones_like(delta))
    assert c.commit()["version"] == v1 + 1
    c.close()


def test_prepared_everywhere_but_no_commit_record_is_rolled_back_on_start(cluster):
    c = PsClient(cluster.address)
    c.create_table("t", 4)
    ids, delta = _rows(500, 4, 3)
    c.push("t", ids, delta)
    v1 = c.commit()["version"]
    want = c.pull("t", ids)[0]
    c.push("t", ids, delta)
    for k, a in enumerate(cluster.addresses):  # phase one on every shard, then the coordinator "dies"
        body = json.dumps({"version": v1 + 1, "parent": v1}).encode()
        list(flight.connect(a).do_action(flight.Action("prepare", body)))
        assert (cluster.shards[k].checkpoint_dir / f"shard-{k}/manifests/v{v1 + 1:08d}.json").exists()
    for s in cluster.shards:
        s.kill9()
        s.start()
    c = PsClient(cluster.address)
    assert [x["version"] for x in c.versions()] == [v1]
    assert np.array_equal(c.pull("t", ids)[0], want)
    for k in range(3):
        assert not (cluster.shards[k].checkpoint_dir / f"shard-{k}/manifests/v{v1 + 1:08d}.json").exists()
    c.close()


def test_a_stale_writer_is_refused_on_every_shard_even_after_restarts(cluster):
    old, new = PsClient(cluster.address), PsClient(cluster.address)
    old.create_table("t", 4)
    ids, delta = _rows(300, 4, 4)
    assert old.fence("worker-0") == 1
    old.push("t", ids, delta)
    assert new.fence("worker-0") == 2  # a newer attempt of the same task
    for call in (lambda: old.push("t", ids, delta), old.commit, lambda: old.dense_add({"w": np.ones(2, np.float32)})):
        with pytest.raises(PsError, match="stale writer 'worker-0' \\(epoch 1\\)"):
            call()
    new.push("t", ids, delta)
    assert new.commit()["version"] == 1
    other = PsClient(cluster.address)
    other.fence("worker-1")  # other writers are not fenced by it
    other.push("t", ids, delta)
    for c in (old, new, other):
        c.close()

    for s in cluster.shards:
        s.restart()
    stale = PsClient(cluster.address)
    stale.writer, stale.epoch = "worker-0", 1  # the old attempt, reconnected: epochs were persisted
    stale._set_options()
    with pytest.raises(PsError, match="stale writer"):
        stale.push("t", ids, delta)
    assert stale.fence("worker-0") == 3
    stale.push("t", ids, delta)
    stale.close()


def test_one_process_server_fences_and_refuses_writes_of_an_earlier_incarnation(tmp_path):
    server = PsProcess(tmp_path / "ck")
    try:
        c = PsClient(server.address)
        c.create_table("t", 4)
        ids, delta = _rows(100, 4, 5)
        c.fence("w")
        PsClient(server.address).fence("w")
        with pytest.raises(PsError, match="stale writer"):
            c.push("t", ids, delta)
        fresh = PsClient(server.address)
        fresh.push("t", ids, delta)
        server.restart()
        with pytest.raises(PsError, match="restarted"):
            fresh.push("t", ids, delta)
        with pytest.raises(PsError, match="restarted"):
            fresh.commit()
        assert PsClient(server.address).fence("w") == 3  # persisted in the checkpoint directory
    finally:
        server.stop()


def _catch(fn, out: list) -> None:
    try:
        fn()
    except Exception as e:
        out.append(e)


def test_flinkdl_run_starts_every_shard_of_a_list_address_and_ps_start_runs_n(tmp_path):
    import psutil

    from flinkdl.config.schema import PsConfig
    from flinkdl.devtools.net import free_port
    from flinkdl.ps.local import ensure_server, stop_servers

    from .conftest import ROOT

    cfg = PsConfig(enabled=True, address=[f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"],
                   checkpoint_dir=str(tmp_path / "run-ps"))
    procs = ensure_server(cfg, str(tmp_path / "ps.log"))
    try:
        assert procs is not None and len(procs) == 2
        with PsClient.from_config(cfg) as c:
            assert c.shards == 2
            c.create_table("t", 2)
            c.push("t", np.arange(100), np.ones((100, 2), np.float32))
            assert c.commit()["version"] == 1 and c.describe("t")["rows"] == 100
    finally:
        stop_servers(procs)

    start = subprocess.Popen([sys.executable, "-m", "flinkdl.cli", "ps", "start", "--shards", "2", "--port",
                              str(free_port()), "--checkpoint-dir", str(tmp_path / "started")],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(start.stdout.readline())
        with PsClient(info["address"]) as c:
            assert c.shards == 2 and c.health()["shard_index"] == 0
        start.send_signal(signal.SIGTERM)
        assert start.wait(60) == 0
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                       for p in info["pids"])
    finally:
        if start.poll() is None:
            start.kill()


def test_with_tokens_shards_call_each_other_as_admin_and_roles_hold(tmp_path):
    tokens = {"FLINKDL_PS_TOKEN": "w-tok", "FLINKDL_PS_READ_TOKEN": "r-tok", "FLINKDL_PS_ADMIN_TOKEN": "a-tok"}
    ps = ShardedPs(2, tmp_path / "ck", env=tokens)
    try:
        writer = PsClient(ps.address, token="w-tok")
        writer.create_table("t", 2)
        writer.fence("worker-0")
        writer.push("t", np.arange(50), np.ones((50, 2), np.float32))
        assert writer.commit()["version"] == 1  # shard 0 prepared shard 1 with the admin token
        with pytest.raises(PsError, match="permission denied"):
            writer.rollback(1)
        with pytest.raises(PsError, match="permission denied"):  # the shard-to-shard calls are admin only
            writer._json("prepare", {"version": 2, "parent": 1}, 1)
        reader = PsClient(ps.address, token="r-tok")
        assert reader.pull("t", np.arange(50), version="latest")[1].all()
        with pytest.raises(PsError, match="permission denied"):
            reader.fence("worker-0")
        PsClient(ps.address, token="a-tok").rollback(1)
    finally:
        ps.stop()


def test_a_shard_without_an_admin_token_or_shared_directory_is_refused_at_start(tmp_path):
    from .conftest import ROOT

    base = [sys.executable, "-m", "flinkdl.cli", "ps", "serve", "--port", "0", "--cluster", "a:1,b:2",
            "--shard-index", "0"]
    no_dir = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert no_dir.returncode == 2 and "--checkpoint-dir (shared by every shard)" in no_dir.stderr
    env = {**os.environ, "FLINKDL_PS_TOKEN": "w"}
    no_admin = subprocess.run([*base, "--checkpoint-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False, env=env)
    assert no_admin.returncode == 2 and "needs an admin token" in no_admin.stderr
