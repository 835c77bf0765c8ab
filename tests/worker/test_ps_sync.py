"""Workers on one parameter server (model API, real server process): load, delta-add, converge."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.config.loader import load_config
from flinkdl.config.schema import JobConfig, PsConfig
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.transform import Featurizer
from flinkdl.models.registry import build_model
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError
from flinkdl.sources.generator import ClickStream
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import ROOT, PsProcess

BATCH = 4096


@pytest.fixture(scope="module")
def data():
    """The main job's config (smaller tables) and featurized click-stream batches (ids, dense, label).

    Its steps and accumulator as before the issue-15 defaults (512 rows, 0.1): the margins below
    were measured on them (docs/BENCHMARKS.md, "Robust defaults for the click streams")."""
    cfg = load_config(ROOT / "jobs/click_stream.yaml", ["features.hash_bits=18", "model.micro_batch_rows=512",
                                                        "model.optimizer.initial_accumulator=0.1"])
    feat, stream = Featurizer(cfg.features), ClickStream(seed=3, drift_at=10**9)
    layout = FeatureLayout.from_config(cfg.features)
    out = []
    for i in range(14):
        cols = feat.transform(stream.batch(i, BATCH))[0].to_pydict()
        ids = np.stack([cols[f"id_{k}"] for k in range(layout.n_ids)], 1).astype(np.int64)
        dense = np.stack([cols[f"x_{k}"] for k in range(layout.n_dense)], 1).astype(np.float32)
        out.append((ids, dense, np.asarray(cols["label"], np.float32)))
    return cfg, out


#: LR with its XLA step (model.xla_step): one adagrad optimizer, one step a batch
XLA_LR = {"name": "lr", "xla_step": True, "micro_batch_rows": None, "dense_optimizer": None}


def _model(cfg: JobConfig, name: str = "fm", **update):
    return build_model(FeatureLayout.from_config(cfg.features), cfg.model.model_copy(update={"name": name, **update}))


def _train(model, sync, batches) -> None:
    for ids, dense, label in batches:
        if sync:
            sync.before_step(ids)
        model.predict_then_train(tf.constant(ids), tf.constant(dense), tf.constant(label))
        if sync:
            sync.after_step()


def _auc(model, batches) -> float:
    y = np.concatenate([b[2] for b in batches])
    p = np.concatenate([model.predict(tf.constant(b[0]), tf.constant(b[1])).numpy() for b in batches])
    auc = auc_from_arrays(y, p)
    assert auc is not None
    return auc


def test_two_workers_on_one_server_converge_and_a_new_worker_loads_their_model(tmp_path, data):
    cfg, batches = data
    train, holdout = batches[:12], batches[12:]
    server = PsProcess(tmp_path / "ck")
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=1, commit_every_pushes=4)
        a, b = _model(cfg), _model(cfg)
        sa, sb = PsSync(a, ps, cfg.features.buckets), PsSync(b, ps, cfg.features.buckets)
        for k in range(0, len(train), 2):  # parallelism 2: each worker sees every other batch
            _train(a, sa, train[k:k + 1])
            _train(b, sb, train[k + 1:k + 2])
        sa.close()
        sb.close()
        # delta-add: the server holds both workers' learning, so a fresh worker that loads it
        # scores the holdout about as well as one worker trained on every batch.
        c = _model(cfg)
        sc = PsSync(c, ps, cfg.features.buckets)
        assert sc.loaded_rows > 0
        alone = _model(cfg)
        _train(alone, None, train)
        half = _model(cfg)
        _train(half, None, train[::2])
        fresh = _auc(_model(cfg), holdout)
        auc_c, auc_alone, auc_half = _auc(c, holdout), _auc(alone, holdout), _auc(half, holdout)
        msg = (auc_c, auc_alone, auc_half, fresh)
        assert auc_c > auc_half + 0.02 and auc_c > fresh + 0.1, msg
        assert auc_c == pytest.approx(auc_alone, abs=0.015), msg
        # the loaded copy is exactly the server's
        client = PsClient(server.address)
        ids, rows = client.pull_all("emb")
        emb = c.variables()["emb"]
        assert np.array_equal(tf.gather(emb, ids).numpy(), rows[:, :emb.shape[1]])
        assert client.versions()[-1]["version"] >= 2
        sc.close(commit=False)
        client.close()
    finally:
        server.stop()


def test_delta_add_sums_both_workers_updates_exactly(tmp_path, data):
    cfg, batches = data
    server = PsProcess(None)
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=100)
        a, b = _model(cfg, "lr"), _model(cfg, "lr")
        sa, sb = PsSync(a, ps, cfg.features.buckets), PsSync(b, ps, cfg.features.buckets)
        start = a.variables()["lr_w"].numpy().copy()
        _train(a, sa, batches[:2])
        _train(b, sb, batches[2:4])
        da = a.variables()["lr_w"].numpy() - start
        db = b.variables()["lr_w"].numpy() - start
        sa.sync()
        sb.sync()
        # b refreshed after both pushes: its rows touched by both carry both deltas
        ids = np.flatnonzero((da != 0).any(1) & (db != 0).any(1))
        assert len(ids) > 10
        got = b.variables()["lr_w"].numpy()[ids]
        assert np.allclose(got, (start + da + db)[ids], atol=1e-6)
        assert np.array_equal(b.variables()["bias"].numpy(), sb.client.dense_get()["bias"])
        sa.close(commit=False)
        sb.close(commit=False)
    finally:
        server.stop()


def test_a_model_that_does_not_fit_the_servers_tables_is_refused_at_start(data):
    cfg, _ = data
    server = PsProcess(None)
    try:
        ps = PsConfig(enabled=True, address=server.address)
        with PsClient(server.address) as c:
            c.create_table("emb", 3, ["accumulator"])  # the job's emb has dim 16
        with pytest.raises(PsError, match="exists with dim 3"):
            PsSync(_model(cfg), ps, cfg.features.buckets)
        with PsClient(server.address) as c:
            c.dense_add({"bias": np.zeros(2, np.float32)})  # the model's bias has shape (1,)
        with pytest.raises(PsError, match="'bias' has shape"):
            PsSync(_model(cfg, "lr"), ps, cfg.features.buckets)
    finally:
        server.stop()


@pytest.mark.parametrize("model", [{"name": "deepfm"}, XLA_LR], ids=["deepfm", "lr-xla"])
def test_a_single_writer_and_its_server_stay_equal_bit_for_bit(tmp_path, data, model):
    """No base, no pull, no read-back: pushed values are assigned; a fresh worker loads exactly
    the single writer's model (embeddings, optimizer slots, dense variables and their optimizer);
    also LR's XLA step, which updates the optimizer's own slots."""
    cfg, batches = data
    server = PsProcess(None)
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=3)
        a = _model(cfg, **model)
        sa = PsSync(a, ps, cfg.features.buckets, single_writer=True)
        _train(a, sa, batches[:7])  # 2 pushes + 1 batch still local
        sa.sync()
        b = _model(cfg, **model)
        sb = PsSync(b, ps, cfg.features.buckets, single_writer=True)
        for name, var in a.variables().items():
            assert np.array_equal(var.numpy(), b.variables()[name].numpy()), name
        for name, var in a.slot_variables().items():
            assert np.array_equal(var.numpy(), b.slot_variables()[name].numpy()), name
        for name, value in sa.dense.items():
            assert np.array_equal(value.numpy(), sb.dense[name].numpy()), name
        # and they go on identically
        _train(a, None, batches[7:9])
        _train(b, None, batches[7:9])
        assert np.array_equal(a.predict(tf.constant(batches[9][0]), tf.constant(batches[9][1])).numpy(),
                              b.predict(tf.constant(batches[9][0]), tf.constant(batches[9][1])).numpy())
        sa.close(commit=False)
        sb.close(commit=False)
    finally:
        server.stop()


def test_a_bags_padding_is_no_touched_row(tmp_path) -> None:
    from flinkdl.config.schema import ModelConfig
    from flinkdl.exchange.schema import PAD, Bag

    server = PsProcess(tmp_path / "ck")
    try:
        layout = FeatureLayout(n_ids=3, n_dense=0, buckets=64, bags=(Bag(2, "mean"),))
        model = build_model(layout, ModelConfig(name="lr"))
        sync = PsSync(model, PsConfig(enabled=True, address=server.address), layout.buckets)
        sync.before_step(np.array([[1, 2, PAD], [3, 4, 5]], np.int64))
        assert sorted(np.concatenate(sync._touched).tolist()) == [1, 2, 3, 4, 5]  # not row 63 (what -1 indexes)
        sync.close()
    finally:
        server.stop()


def test_target_statistics_of_two_workers_add_up_on_the_server(tmp_path, data):
    """``model.target_stats``' counts are a sparse table like the weights: each worker's deltas add."""
    from flinkdl.config.target_stats import TargetStatsConfig
    from flinkdl.models.target_stats import TABLE

    cfg, batches = data
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"target_stats": TargetStatsConfig()})})
    server = PsProcess(None)
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=100)
        a, b = _model(cfg, "lr"), _model(cfg, "lr")
        sa, sb = PsSync(a, ps, cfg.features.buckets), PsSync(b, ps, cfg.features.buckets)
        _train(a, sa, batches[:2])
        _train(b, sb, batches[2:4])
        sa.sync()
        sb.sync()
        n_single = a.layout.n_single
        ids = np.concatenate([x[:, :n_single].ravel() for x, _, _ in batches[:4]])
        clicks = np.concatenate([np.repeat(y, n_single) for _, _, y in batches[:4]])
        want = np.zeros((cfg.features.buckets, 2), np.float32)
        np.add.at(want, ids, np.stack([np.ones_like(clicks), clicks], 1))
        c = _model(cfg, "lr")
        sc = PsSync(c, ps, cfg.features.buckets)  # loads the server's rows
        assert np.array_equal(c.variables()[TABLE].numpy(), want)
        for s in (sa, sb, sc):
            s.close(commit=False)
    finally:
        server.stop()
