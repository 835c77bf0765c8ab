"""Compaction of writer lanes (flinkdl/ps/lane_compact.py): folding the segments that every kept cut
has passed bounds the lane files, and changes nothing a reader, a rollback or a restart sees; on real
``flinkdl ps serve`` processes (one server, and a 2-process sharded PS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError
from flinkdl.ps.lane_compact import floors, fold_segments
from flinkdl.ps.lanes import Segment

from .conftest import ps_of

IDS = np.arange(0, 3000, 7, dtype=np.int64)
W = 3  # row width: dim 1 plus slots a and b
SEGMENTS = 8


def _delta(seed: int, n: int = len(IDS)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, W)).astype(np.float32)


def test_fold_segments_sums_per_row_and_keeps_the_first_start_value():
    a = Segment(rows={(0, "emb"): [(np.array([1, 2]), np.ones((2, 1), np.float32), np.full((2, 1), 5, np.float32))]},
                dense=[({"w": np.ones(2, np.float32)}, {"w": np.zeros(2, np.float32)})], specs={"emb": {"dim": 1}})
    b = Segment(rows={(0, "emb"): [(np.array([2, 3]), np.full((2, 1), 2, np.float32), None)]},
                dense=[({"w": np.full(2, 3, np.float32)}, {"w": np.full(2, 9, np.float32)})])
    out = fold_segments([a, b])
    ((ids, delta, init),) = out.rows[(0, "emb")]
    assert ids.tolist() == [1, 2, 3] and delta[:, 0].tolist() == [1, 3, 2] and init[:, 0].tolist() == [5, 5, 0]
    ((dense, start),) = out.dense
    assert dense["w"].tolist() == [4, 4] and start["w"].tolist() == [0, 0] and out.specs == {"emb": {"dim": 1}}


def test_floors_are_the_lowest_seq_of_the_kept_cuts():
    cuts = [{"id": i, "cut": {"worker-0": i + 1, "worker-1": 2 * i}} for i in range(1, 6)]
    cuts[-1]["cut"].pop("worker-1")  # a writer missing from a kept cut is not folded
    assert floors(cuts, 2) == ({"worker-0": 5}, 4)
    assert floors(cuts[:2], 2) == ({}, None)


def _segment_dirs(root: Path, writer: str) -> list[str]:
    return sorted(d.name for d in root.glob(f"**/lanes/w/{writer}/*") if d.is_dir() and d.name != "marks")


def _scenario(address: str, restart, ckpt: Path, shards: int) -> None:
    w0, w1 = PsClient(address), PsClient(address)
    for c, name in ((w0, "worker-0"), (w1, "worker-1")):
        c.create_table("emb", 1, ["a", "b"])
        c.fence(name)
    init = np.full((len(IDS), W), 0.5, np.float32)
    assert w0.lane_commit() == 1 and w1.lane_commit() == 1
    expect = init.copy()
    acc0, acc1 = {1: np.zeros_like(init)}, {1: np.zeros_like(init)}  # each writer's deltas up to a segment
    for seq in range(2, SEGMENTS + 1):
        w0.push("emb", IDS, _delta(seq), init=init)
        w0.dense_add({"w": np.full(2, seq, np.float32)}, init={"w": np.zeros(2, np.float32)})
        w1.push("emb", IDS[::2], _delta(100 + seq)[::2], init=init[::2])
        acc0[seq], acc1[seq] = acc0[seq - 1] + _delta(seq), acc1[seq - 1].copy()
        acc1[seq][::2] += _delta(100 + seq)[::2]
        assert w0.lane_commit() == seq and w1.lane_commit() == seq
        w1.record_cut(seq - 1, {"worker-0": seq, "worker-1": seq})
    expect = init + acc0[SEGMENTS] + acc1[SEGMENTS]
    live = w0.pull("emb", IDS)[0]
    assert np.abs(live - expect).max() < 1e-4
    cut5 = {"worker-0": 5, "worker-1": 5}
    before = w0.pull("emb", IDS, version={"cut": cut5})[0]

    out = w0.lane_compact(keep=3)  # cuts 5, 6, 7 kept: floors {worker-0: 6, worker-1: 6}
    assert out["folded"] == {"worker-0": 6, "worker-1": 6} and out["cuts_dropped"] == 4
    assert [c["id"] for c in w0.cuts()] == [5, 6, 7]
    assert _segment_dirs(ckpt, "worker-0") == sorted(["f00000006", "s00000007", "s00000008"] * shards)
    assert w0.lane_compact(keep=3) == {}  # no more than 3 cuts left: nothing to do
    assert np.array_equal(w0.pull("emb", IDS)[0], live)  # the live rows are untouched
    at_cut = w0.pull("emb", IDS, version={"cut": {"worker-0": 6, "worker-1": 7}})[0]
    assert np.abs(at_cut - (init + acc0[6] + acc1[7])).max() < 1e-4
    with pytest.raises(PsError, match="folded"):
        w0.pull("emb", IDS, version={"cut": cut5})
    assert np.abs(before - (init + acc0[5] + acc1[5])).max() < 1e-4
    with pytest.raises(PsError, match="was folded"):
        w0.lane_rollback(5)

    w0.lane_rollback(6)  # drops worker-0's segments 7 and 8, read back from their files
    expect = init + acc0[6] + acc1[SEGMENTS]
    assert np.abs(w0.pull("emb", IDS)[0] - expect).max() < 1e-4
    assert np.allclose(w0.dense_get()["w"], sum(range(2, 7)))
    w0.close()
    w1.close()

    restart()  # kill -9: base + the folded segment + the later ones come back from the files
    with PsClient(address) as c:
        assert np.abs(c.pull("emb", IDS)[0] - expect).max() < 1e-4
        assert np.allclose(c.dense_get()["w"], sum(range(2, 7)))
        c.fence("worker-0")
        assert c.lane_seq() == 6 and c.lane_commit() == 7
        for cut_id in range(8, 12):
            c.record_cut(cut_id, {"worker-0": 7, "worker-1": SEGMENTS})
        # a second round folds the first round's segment too
        assert c.lane_compact(keep=2)["folded"] == {"worker-0": 2, "worker-1": 3}
        assert _segment_dirs(ckpt, "worker-0") == ["f00000007"] * shards
        assert _segment_dirs(ckpt, "worker-1") == ["f00000008"] * shards
    restart()
    with PsClient(address) as c:
        assert np.abs(c.pull("emb", IDS)[0] - expect).max() < 1e-4


@pytest.mark.parametrize("shards", [1, 2], ids=["one-server", "sharded"])
def test_lane_compaction(tmp_path, shards):
    ps = ps_of(shards, tmp_path / "ck")
    try:
        _scenario(ps.address, ps.kill9_restart, tmp_path / "ck", shards)
    finally:
        ps.stop()


def test_a_start_between_the_folded_mark_and_the_removal_reads_each_delta_once(tmp_path):
    import pyarrow.fs as pafs

    from flinkdl.ps.lanes import LaneBook

    book = LaneBook(pafs.LocalFileSystem(), str(tmp_path))
    for seq in (1, 2, 3):
        book.commit("worker-0", None, None, {})  # opens the lane; the journal is empty until a push
        book.record_rows("worker-0", 0, "emb", [(np.array([seq]), np.full((1, 1), seq, np.float32), None)])
    book.commit("worker-0", None, None, {})
    segs = [book.read("worker-0", s) for s in (1, 2, 3)]
    book._write("worker-0", 3, fold_segments(segs), folded_from=1)  # crashed here: segments 1 and 2 still on disk
    again = LaneBook(pafs.LocalFileSystem(), str(tmp_path))
    assert again.live("worker-0") == [3, 4] and again.floor("worker-0") == 3
    rows = [p for seg in again.segments() for p in seg.rows.get((0, "emb"), [])]
    assert sorted(int(i) for p in rows for i in p[0]) == [1, 2, 3]  # each once: 1 and 2 inside the fold
