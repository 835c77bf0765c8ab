"""Per-writer lanes on real ``flinkdl ps serve`` processes (one server, and a 2-process sharded PS):
writer commit, writer rollback that leaves the other writers' deltas, restore after kill -9, cuts,
fencing of a stale writer (flinkdl/ps/lanes.py, docs/EXACTLY_ONCE.md)."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError
from flinkdl.ps.lane_service import newest_cut_state

from .conftest import PsProcess, ShardedPs, ps_of

IDS = np.arange(0, 4000, 7, dtype=np.int64)
W = 3  # row width: dim 1 plus slots a and b


def _delta(seed: int, n: int = len(IDS)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, W)).astype(np.float32)


def _writer(address: str, name: str) -> PsClient:
    c = PsClient(address)
    c.create_table("emb", 1, ["a", "b"])
    c.fence(name)
    return c


def _scenario(address: str, restart, ckpt: str) -> None:
    """Two writers; w0 rolls back past its last segment; the PS restarts; a cut is read back."""
    w0, w1 = _writer(address, "worker-0"), _writer(address, "worker-1")
    init = np.full((len(IDS), W), 0.5, np.float32)
    assert w0.lane_commit() == 1 and w1.lane_commit() == 1  # fresh start: empty segments (the anchors)
    a, b, c, d = _delta(1), _delta(2), _delta(3), _delta(4)
    w0.push("emb", IDS, a, init=init)
    w0.dense_add({"w": np.ones(2, np.float32)}, init={"w": np.zeros(2, np.float32)})
    assert w0.lane_commit() == 2
    w1.push("emb", IDS[::2], b[::2], init=init[::2])
    w0.push("emb", IDS, c)  # after w0's anchor 2: taken back
    w0.dense_add({"w": np.full(2, 5, np.float32)})
    assert w1.lane_commit() == 2
    w1.push("emb", IDS[1::2], d[1::2])  # w1's open journal: kept by w0's rollback
    expect = init + a
    expect[::2] += b[::2]
    expect[1::2] += d[1::2]
    assert w0.lane_rollback(2)["seq"] == 2
    rows, exists = w0.pull("emb", IDS)
    assert exists.all() and np.abs(rows - expect).max() < 1e-5
    assert np.allclose(w0.dense_get()["w"], 1.0)

    w1.record_cut(7, {"worker-0": 2, "worker-1": 1})
    assert w1.cuts()[-1] == {"id": 7, "cut": {"worker-0": 2, "worker-1": 1}}
    at_cut, _ = w1.pull("emb", IDS, version={"cut": {"worker-0": 2, "worker-1": 1}})
    assert np.abs(at_cut - (init + a)).max() < 1e-5
    state = newest_cut_state(ckpt)  # what export reads: the files, no server
    assert state is not None and state.version == 7 and np.allclose(state.dense["w"], 1.0)
    parts = [v for k, v in state.rows.items() if k[1] == "emb"]
    ids, rows = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    assert np.array_equal(np.sort(ids), IDS) and np.abs(rows[np.argsort(ids)] - (init + a)).max() < 1e-5
    w0.close()
    w1.close()

    restart()  # kill -9: the open journal of w1 (d) is gone, every committed segment comes back
    w1 = _writer(address, "worker-1")
    assert w1.lane_seq() == 2
    rows, _ = w1.pull("emb", IDS)
    expect[1::2] -= d[1::2]
    assert np.abs(rows - expect).max() < 1e-5
    assert np.allclose(w1.dense_get()["w"], 1.0)
    w1.lane_rollback(1)  # from the files: w1's segment 2 (b) out
    rows, _ = w1.pull("emb", IDS)
    assert np.abs(rows - (init + a)).max() < 1e-5
    assert w1.lane_seq() == 1 and w1.lane_commit() == 2
    with pytest.raises(PsError, match="unknown segment 5"):
        w1.lane_rollback(5)
    stale = PsClient(address)
    stale.writer, stale.epoch = "worker-1", 1  # an earlier attempt of worker-1
    stale._set_options()
    with pytest.raises(PsError, match="stale writer"):
        stale.lane_commit()
    stale.close()
    w1.close()


@pytest.mark.parametrize("shards", [1, 2], ids=["one-server", "sharded"])
def test_lanes(tmp_path, shards):
    ps = ps_of(shards, tmp_path / "ck")
    try:
        _scenario(ps.address, ps.kill9_restart, str(tmp_path / "ck"))
    finally:
        ps.stop()


def test_a_global_rollback_ends_the_lanes(tmp_path):
    ps = PsProcess(tmp_path / "ck")
    try:
        c = _writer(ps.address, "worker-0")
        c.push("emb", IDS, _delta(1))
        v = c.commit()["version"]
        assert c.lane_commit() == 1
        c.push("emb", IDS, _delta(2))
        c.lane_commit()
        c.rollback(v)
        assert c.lane_seq() == 0
        rows, _ = c.pull("emb", IDS)
        assert np.abs(rows - _delta(1)).max() == 0
        c.lane_commit()
        c.push("emb", IDS, _delta(2))
        c.end_lanes()  # the live rows stay; a restart restores the latest version, not lanes
        assert c.lane_seq() == 0 and np.abs(c.pull("emb", IDS)[0] - _delta(1) - _delta(2)).max() < 1e-5
        c.commit()
        c.close()
        ps.kill9()
        ps.start()
        with PsClient(ps.address) as c:
            assert np.abs(c.pull("emb", IDS)[0] - _delta(1) - _delta(2)).max() < 1e-5
    finally:
        ps.stop()


def test_a_stale_attempt_cannot_touch_the_new_attempts_lane(tmp_path):
    """Subtask 1 restarted: its old attempt (frozen, then resumed) is refused on every shard, for every
    write (rows, dense, lane commit and rollback), so the new attempt's lane and subtask 0's keep
    exactly what their own pushes made."""
    ps = ShardedPs(2, tmp_path / "ck")
    try:
        init = np.full((len(IDS), W), 0.5, np.float32)
        w0, old = _writer(ps.address, "worker-0"), _writer(ps.address, "worker-1")
        assert w0.lane_commit() == 1 and old.lane_commit() == 1
        w0.push("emb", IDS, _delta(1), init=init)
        old.push("emb", IDS, _delta(2), init=init)
        assert old.lane_commit() == 2  # the old attempt's last segment: past the new attempt's anchor
        new = _writer(ps.address, "worker-1")  # the restarted subtask: a newer epoch, then its rollback
        new.lane_rollback(1)
        new.push("emb", IDS[::2], _delta(3)[::2])
        for write in (lambda: old.push("emb", IDS, _delta(4)), lambda: old.dense_add({"w": np.ones(2, np.float32)}),
                      old.lane_commit, lambda: old.lane_rollback(0)):
            with pytest.raises(PsError, match="stale writer"):
                write()
        assert new.lane_commit() == 2 and w0.lane_commit() == 2
        expect = init + _delta(1)
        expect[::2] += _delta(3)[::2]
        rows, exists = w0.pull("emb", IDS)
        assert exists.all() and np.abs(rows - expect).max() < 1e-5
        assert "w" not in w0.dense_get()
        cut = w0.pull("emb", IDS, version={"cut": {"worker-0": 2, "worker-1": 2}})[0]
        assert np.abs(cut - expect).max() < 1e-5
        for c in (w0, old, new):
            c.close()
    finally:
        ps.stop()
