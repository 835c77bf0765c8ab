"""How often a worker pushes and commits (:func:`flinkdl.worker.ps_sync.cadence`, :class:`PsSync`)."""

import numpy as np

from flinkdl.config.loader import load_config
from flinkdl.config.schema import PsConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.registry import build_model
from flinkdl.worker.ps_sync import SINGLE_WRITER_PUSH_EVERY, PsSync, cadence
from tests.ps.conftest import ROOT, PsProcess
from tests.worker.test_ps_sync import _train


def test_a_single_writer_pushes_less_often_and_keeps_the_version_cadence() -> None:
    ps = PsConfig(enabled=True)
    assert cadence(ps, single_writer=True, commit_every_push=False) == (SINGLE_WRITER_PUSH_EVERY, 10)
    assert cadence(ps, single_writer=False, commit_every_push=False) == (10, 10)
    own = PsConfig(enabled=True, single_writer_push_every_batches=50)
    assert cadence(own, single_writer=True, commit_every_push=False) == (50, 10)


def test_an_explicit_push_interval_and_exactly_once_keep_push_every_batches() -> None:
    ps = PsConfig(enabled=True, push_every_batches=3, commit_every_pushes=4)
    assert cadence(ps, single_writer=True, commit_every_push=False) == (3, 4)
    assert cadence(PsConfig(enabled=True), single_writer=True, commit_every_push=True) == (10, 1)


def test_a_single_writer_with_its_own_push_interval_commits_on_the_ticks(tmp_path) -> None:
    """Ticks every 4 batches, a version every 2 ticks (batches 8, 16), pushes every 3 batches and with each version."""
    cfg = load_config(ROOT / "jobs/click_stream.yaml", ["features.hash_bits=12", "model.name=lr"])
    server = PsProcess(tmp_path / "ck")
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=4, push_every_s=3600,
                      commit_every_pushes=2, single_writer_push_every_batches=3)
        model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
        sync = PsSync(model, ps, 1 << 12, single_writer=True)
        rng = np.random.default_rng(0)
        layout = FeatureLayout.from_config(cfg.features)
        batches = [(rng.integers(0, 1 << 12, (64, layout.n_ids)), rng.random((64, layout.n_dense), np.float32),
                    rng.integers(0, 2, 64).astype(np.float32)) for _ in range(17)]
        _train(model, sync, batches)
        sync.drain()
        assert sync.pushes == 7  # batches 3, 6, 8, 9, 12, 15, 16
        assert [v["version"] for v in sync.client.versions()] == [1, 2] and sync.committed == 2
        sync.close(commit=False)
    finally:
        server.stop()
