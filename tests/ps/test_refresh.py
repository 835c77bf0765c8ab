"""The serving model follows committed versions of a real server, read-only, and scores as the trainer."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.config.loader import load_config
from flinkdl.config.schema import JobConfig, PsConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.transform import Featurizer
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError
from flinkdl.ps.export import load_version
from flinkdl.ps.refresh import ModelRefresher
from flinkdl.sources.generator import ClickStream
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import ROOT, PsProcess

BATCH = 2048
REFRESH_S = 0.5
TOKENS = {"FLINKDL_PS_READ_TOKEN": "reader", "FLINKDL_PS_TOKEN": "writer"}


@pytest.fixture(scope="module")
def data() -> tuple[JobConfig, list]:
    cfg = load_config(ROOT / "jobs/click_stream.yaml", ["features.hash_bits=16"])
    feat, stream = Featurizer(cfg.features), ClickStream(seed=5, drift_at=10**9)
    layout = FeatureLayout.from_config(cfg.features)
    out = []
    for i in range(8):
        cols = feat.transform(stream.batch(i, BATCH))[0].to_pydict()
        ids = np.stack([cols[f"id_{k}"] for k in range(layout.n_ids)], 1).astype(np.int64)
        dense = np.stack([cols[f"x_{k}"] for k in range(layout.n_dense)], 1).astype(np.float32)
        out.append((ids, dense, np.asarray(cols["label"], np.float32)))
    return cfg, out


def _model(cfg: JobConfig) -> ModelBase:
    return build_model(FeatureLayout.from_config(cfg.features), cfg.model)


def _scores(model: ModelBase, batches: list) -> np.ndarray:
    return np.concatenate([model.predict(tf.constant(b[0]), tf.constant(b[1])).numpy() for b in batches])


def test_refresher_loads_each_new_version_and_scores_like_the_trainer(tmp_path, data):
    cfg, batches = data
    first, second, holdout = batches[:3], batches[3:6], batches[6:]
    server = PsProcess(tmp_path / "ck", env=TOKENS)
    try:
        ps = PsConfig(enabled=True, address=server.address, token="writer", push_every_batches=3,
                      push_every_s=3600, commit_every_pushes=1)
        trainer = _model(cfg)
        sync = PsSync(trainer, ps, cfg.features.buckets, single_writer=True)

        def train(part: list) -> None:
            for ids, dense, label in part:
                sync.before_step(ids)
                trainer.predict_then_train(tf.constant(ids), tf.constant(dense), tf.constant(label))
                sync.after_step()

        reader = PsClient(server.address, token="reader")
        with pytest.raises(PsError):
            reader.commit()  # the read role cannot write: serving needs no more
        served = ModelRefresher(_model(cfg), reader, cfg.ps.table_prefix, refresh_s=REFRESH_S)
        assert served.refresh() is None and served.version is None  # nothing committed yet

        train(first)
        assert sync.committed == 1
        assert served.refresh() is not None and served.version == 1
        v1 = _scores(served.model, holdout)
        np.testing.assert_allclose(v1, _scores(trainer, holdout), atol=1e-6, rtol=0)
        np.testing.assert_allclose(v1, _scores(load_version(cfg, str(tmp_path / "ck"), 1)[0], holdout),
                                   atol=1e-6, rtol=0)

        assert served.maybe_refresh() is None  # polled just now
        train(second)
        committed = time.monotonic()
        assert sync.committed == 2
        while served.version != 2 and time.monotonic() - committed < REFRESH_S + 5:
            served.maybe_refresh()  # as between batches
            time.sleep(0.02)
        picked_up = time.monotonic() - committed
        assert served.version == 2 and picked_up <= REFRESH_S + 1.0, picked_up
        assert served.loaded is not None and 0 <= served.loaded.lag_s <= REFRESH_S + 1.0
        v2 = _scores(served.model, holdout)
        assert np.abs(v2 - v1).max() > 1e-4  # it did move
        np.testing.assert_allclose(v2, _scores(trainer, holdout), atol=1e-6, rtol=0)
        np.testing.assert_allclose(v2, _scores(load_version(cfg, str(tmp_path / "ck"), 2)[0], holdout),
                                   atol=1e-6, rtol=0)
        print(f"refresh: picked up {picked_up:.3f} s after the commit returned; lag {served.loaded.lag_s:.3f} s")

        # the trainer's annotation comes after its commit: the loaded version's age follows it
        assert served.loaded.trained_event_ts is None
        sync.client.annotate(2, 123_456)
        served.refresh()
        assert served.version == 2 and served.loaded.trained_event_ts == 123_456

        # a background poller loads a new version with no request (no maybe_refresh) at all
        loads: list = []
        served.poll_in_background(loads.append)
        try:
            train([*holdout, first[0]])  # three batches: one push, one commit
            committed = time.monotonic()
            assert sync.committed == 3
            while not loads and time.monotonic() - committed < REFRESH_S + 5:
                time.sleep(0.02)
            picked_up = time.monotonic() - committed
        finally:
            served.stop()
        assert [x.version for x in loads] == [3] and picked_up <= REFRESH_S + 1.0, picked_up
        assert loads[0].trained_event_ts == 123_456  # inherited from version 2 until annotated
        print(f"background refresh: picked up {picked_up:.3f} s after the commit; lag {loads[0].lag_s:.3f} s")
        reader.close()
        sync.client.close()
    finally:
        server.stop()
