"""Dynamic ids on a parameter server (real server process): rows and their ids survive a restart."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.config.dynamic import DynamicConfig
from flinkdl.config.loader import load_config
from flinkdl.config.schema import ModelConfig, PsConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model
from flinkdl.models.dynamic import OWNER, DynamicIdModel, decode_ids
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError
from flinkdl.worker.hooks.base import Batch
from flinkdl.worker.hooks.ps_dynamic import DynamicPsHook
from flinkdl.worker.process import build_hooks, run_step
from tests.ps.conftest import ROOT, PsProcess

CAPACITY = 64


def _model() -> DynamicIdModel:
    cfg = ModelConfig(name="dynamic", embedding_dim=4, dynamic=DynamicConfig(base="fm", capacity=CAPACITY))
    m = build_model(FeatureLayout(n_ids=2, n_dense=1, buckets=1 << 62), cfg)
    assert isinstance(m, DynamicIdModel)
    return m


def _batches(n: int, seed: int = 0):
    """30 frequent ids beside a churn of one-off ids (far more distinct ids than rows)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        ids = np.stack([rng.integers(0, 30, 16) << 40, rng.integers(1 << 41, 1 << 50, 16)], 1)
        yield Batch(tf.constant(np.arange(k * 16, k * 16 + 16)), tf.constant(rng.random(16) < 0.3, tf.float32),
                    tf.constant(ids, tf.int64), tf.zeros([16, 1]))


def test_rows_and_their_ids_survive_a_worker_restart_and_evictions_reach_the_server(tmp_path):
    server = PsProcess(None)
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=3)
        a = _model()
        hook = DynamicPsHook.from_config(ps, a, 0, exactly_once=False, parallelism=1)
        for batch in _batches(40):
            run_step(a, [hook], batch)
        hook.close()
        assert a.ids.evicted > 400  # the churn went through the table many times
        with PsClient(server.address) as c:
            rows, code = c.pull_all(OWNER)
            held = decode_ids(code[:, :4])
            assert len(rows) <= CAPACITY + 2  # bounded on the server too: a row per position
            live = a.ids.owner >= 0
            assert set(held[held >= 0]) == set(a.ids.owner[live])  # evicted ids are gone from it
            assert np.array_equal(held[np.argsort(rows)][:CAPACITY], a.ids.owner)
        b = _model()  # a restarted worker (hooks as the job builds them): same map, values, scores
        job = load_config(ROOT / "jobs/click_stream.yaml", [
            "model.name=dynamic", "ps.enabled=true", f"ps.address={server.address}", f"job.run_dir={tmp_path}"])
        (hook_b,) = build_hooks(job, b, 1 << 62, 0)
        assert isinstance(hook_b, DynamicPsHook)
        assert np.array_equal(b.ids.owner, a.ids.owner)
        for name in ("emb", OWNER):
            assert np.array_equal(b.variables()[name].numpy(), a.variables()[name].numpy()), name
        probe = next(iter(_batches(1, seed=1)))
        np.testing.assert_allclose(b.predict(probe.ids, probe.dense).numpy(), a.predict(probe.ids, probe.dense))
        hook_b.sync.close(commit=False)
        with pytest.raises(PsError, match="parallelism 1"):
            DynamicPsHook.from_config(ps, _model(), 0, exactly_once=False, parallelism=2)
    finally:
        server.stop()
