"""Checkpoints on a non-local pyarrow filesystem (the in-memory mock): deltas, compaction, retention."""

from __future__ import annotations

import numpy as np
import pyarrow.fs as pafs

from flinkdl.ps.checkpoint import CheckpointStore
from flinkdl.ps.service import ParameterService


def _service(fs: pafs.FileSystem, shards: int = 2, **kw) -> ParameterService:
    return ParameterService(shards, CheckpointStore("bucket/ps", shards, filesystem=fs, **kw))


def _push(svc: ParameterService, ids: np.ndarray, delta: np.ndarray) -> None:
    from flinkdl.ps.wire import shard_of

    s = shard_of(ids, svc.shards)
    for k in range(svc.shards):
        svc.push("t", k, ids[s == k], delta[s == k])


def _all(svc: ParameterService) -> dict[int, list[float]]:
    out = {}
    for k in range(svc.shards):
        ids, rows, _ = svc.pull("t", k, None)
        out.update(zip(ids.tolist(), rows.tolist(), strict=True))
    return out


def test_versions_on_an_object_store_filesystem_restore_compact_and_retain():
    fs = pafs._MockFileSystem()  # an in-memory filesystem: no rename, no local paths
    svc = _service(fs, retain=2, compact_after=3)
    svc.create_table("t", 2, ["s"])
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1 << 40, 500)
    _push(svc, ids, np.ones((500, 4), np.float32))
    svc.dense_add({"w": np.ones(3, np.float32)})
    states = {svc.commit()["version"]: _all(svc)}
    for step in range(6):
        _push(svc, ids[step * 7:step * 7 + 7], np.full((7, 4), step, np.float32))
        m = svc.commit()
        assert m["rows"] == 7
        states[m["version"]] = _all(svc)
        svc.ckpt.wait_compaction()
    kinds = {v["version"]: v["kind"] for v in svc.versions()}
    assert "snapshot" in list(kinds.values())[1:], kinds  # a delta chain was compacted
    assert max(kinds) == 7 and len(kinds) <= 5
    restored = _service(fs)
    assert restored.base_version == 7 and _all(restored) == states[7]
    assert np.array_equal(restored.dense_get()["w"], np.ones(3))
    restored.rollback(6)
    assert _all(restored) == states[6]
    # the serving read path reads the latest committed version while the live state moves on
    from flinkdl.ps.wire import shard_of

    _push(restored, ids[:1], np.ones((1, 4), np.float32))
    shard = int(shard_of(ids[:1], 2)[0])
    _, live, _ = restored.pull("t", shard, ids[:1])
    _, served, exists = restored.pull("t", shard, ids[:1], version="latest")
    assert exists.all() and served[0].tolist() == states[7][int(ids[0])]
    assert np.array_equal(live, served + 1)
