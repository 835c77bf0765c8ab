"""Two exactly-once workers on writer lanes (parallelism 2, real server process): one rolls back
its own lane to its anchor (flinkdl/pipeline/ps_anchor.py) and the PS holds what it would hold had
that worker never trained past its anchor, the other worker's deltas included."""

from __future__ import annotations

import numpy as np

from flinkdl.config.schema import PsConfig
from flinkdl.pipeline.ps_anchor import reset_to_version
from flinkdl.ps.client import PsClient
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import PsProcess
from tests.worker.test_ps_sync import _model, _train, data  # noqa: F401 - a fixture


def _state(address: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with PsClient(address) as c:
        out = {}
        for t in c.list_tables():
            ids, rows = c.pull_all(t)
            out[t] = (ids[np.argsort(ids)], rows[np.argsort(ids)])
        dense = c.dense_get()
        return {**out, **{f"dense/{k}": (np.zeros(1, np.int64), np.reshape(v, (1, -1))) for k, v in dense.items()}}


def _pair(address: str, cfg) -> tuple[dict, dict]:
    ps = PsConfig(enabled=True, address=address, push_every_batches=1)
    anchors = {w: reset_to_version(ps, None, lambda: None, w, lanes=True) for w in ("worker-0", "worker-1")}
    a, b = _model(cfg), _model(cfg)
    sa = PsSync(a, ps, cfg.features.buckets, commit_every_push=True, writer="worker-0", lanes=True)
    sb = PsSync(b, ps, cfg.features.buckets, commit_every_push=True, writer="worker-1", lanes=True)
    return (anchors, {"a": (a, sa), "b": (b, sb)})


def test_a_worker_rolls_back_its_own_lane_and_keeps_the_others(tmp_path, data):  # noqa: F811
    cfg, batches = data
    states = []
    for crash in (False, True):
        server = PsProcess(tmp_path / f"ck-{crash}")
        try:
            anchors, w = _pair(server.address, cfg)
            assert {x["seq"] for x in anchors.values()} == {1}
            (a, sa), (b, sb) = w["a"], w["b"]
            _train(a, sa, batches[0:1])
            assert sa.committed == 2
            _train(b, sb, batches[1:2])
            if crash:  # a trains on, then dies; its trainer rolls its lane back to segment 2
                _train(a, sa, batches[2:4])
                assert sa.committed == 4
                sa.client.close()
                ps = PsConfig(enabled=True, address=server.address)
                got = reset_to_version(ps, {"writer": "worker-0", "seq": 2}, lambda: None, "worker-0", lanes=True)
                assert got == {"writer": "worker-0", "seq": 2}
            states.append(_state(server.address))
            sb.client.close()
        finally:
            server.stop()
    clean, crashed = states
    assert clean.keys() == crashed.keys()
    gap = 0.0
    for k, (ids, rows) in clean.items():
        # rows first created by a rolled-back push stay at the value they started from (a superset)
        have, crashed_rows = crashed[k]
        pos = np.searchsorted(have, ids)
        assert np.array_equal(have[pos], ids)
        gap = max(gap, float(np.abs(rows - crashed_rows[pos]).max()))
    assert gap < 1e-5, gap
