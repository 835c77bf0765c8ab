"""Models: shapes, prequential step, sparse updates, learning, registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import ModelBase, build_model, known_models

BUILTIN = ["lr", "fm", "deepfm"]
LAYOUT = FeatureLayout(n_ids=4, n_dense=2, buckets=1 << 12)
HERE = Path(__file__).parent


def cfg(name: str, **kw) -> ModelConfig:
    return ModelConfig(name=name, embedding_dim=4, hidden=[16], **kw)


def batch(n: int, seed: int = 0, layout: FeatureLayout = LAYOUT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, layout.buckets, (n, layout.n_ids), dtype=np.int64)
    dense = rng.normal(size=(n, layout.n_dense)).astype(np.float32)
    return ids, dense, (rng.random(n) < 0.4).astype(np.float32)


def interaction_stream(n: int, seed: int, vocab: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label hangs on the XOR of two fields' hidden signs: no first-order signal in them."""
    rng = np.random.default_rng(seed)
    sign = np.where(np.random.default_rng(123).random((LAYOUT.n_ids, vocab)) < 0.5, -1.0, 1.0)
    vals = rng.integers(0, vocab, (n, LAYOUT.n_ids))
    ids = (np.arange(LAYOUT.n_ids) * vocab + vals).astype(np.int64)
    dense = rng.normal(size=(n, LAYOUT.n_dense)).astype(np.float32)
    logit = 2.5 * sign[0, vals[:, 0]] * sign[1, vals[:, 1]] + 0.3 * dense[:, 0]
    return ids, dense, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)


@pytest.mark.parametrize("name", BUILTIN)
def test_shapes_and_no_retrace(name: str) -> None:
    m = build_model(LAYOUT, cfg(name))
    assert isinstance(m, ModelBase) and m.name == name
    traces = None
    for n in (1, 7, 33):
        ids, dense, y = batch(n, seed=n)
        p = m.predict(ids, dense)
        assert p.shape == (n,) and p.dtype.name == "float32"
        assert np.all((p.numpy() > 0) & (p.numpy() < 1))
        assert m.predict_then_train(ids, dense, y).shape == (n,)
        # the first call traces twice (tf.function retraces after the optimizer creates slots)
        traces = traces or m._step_fn.experimental_get_tracing_count()
    assert m._predict_fn.experimental_get_tracing_count() == 1
    assert m._step_fn.experimental_get_tracing_count() == traces <= 2
    for table in m.sparse_names():
        assert m.variables()[table].shape[0] == LAYOUT.buckets


@pytest.mark.parametrize("name", BUILTIN)
def test_predict_then_train_is_prequential(name: str) -> None:
    m = build_model(LAYOUT, cfg(name))
    ids, dense, y = batch(64)
    m.predict_then_train(ids, dense, y)  # move off the initial point
    assert m.version == 1
    before = m.predict(ids, dense).numpy()
    scores = m.predict_then_train(ids, dense, y).numpy()
    np.testing.assert_allclose(scores, before, rtol=1e-6, atol=1e-7)
    assert m.version == 2
    assert not np.allclose(m.predict(ids, dense).numpy(), before)


@pytest.mark.parametrize("opt", ["adagrad", "ftrl", "sgd"])
@pytest.mark.parametrize("name", BUILTIN)
def test_only_touched_rows_change(name: str, opt: str) -> None:
    m = build_model(LAYOUT, cfg(name, optimizer=OptimizerConfig(name=opt, learning_rate=0.1)))
    ids, dense, y = batch(32)
    m.predict_then_train(ids, dense, y)  # LR weights start at 0: take one step so all tables are nonzero
    ids, dense, y = batch(32, seed=1)
    before = {n: m.variables()[n].numpy() for n in m.sparse_names()}
    m.predict_then_train(ids, dense, y)
    touched = np.zeros(LAYOUT.buckets, bool)
    touched[ids.ravel()] = True
    for n, old in before.items():
        new = m.variables()[n].numpy()
        assert np.array_equal(new[~touched], old[~touched]), n  # bit-identical
        changed = np.any(new != old, axis=1)
        assert changed[touched].mean() > 0.9, n


@pytest.mark.parametrize("name", BUILTIN)
def test_step_never_reads_a_whole_table(name: str) -> None:
    """Tables are only gathered and sparsely updated (a full read would cost O(table) per step)."""
    m = build_model(LAYOUT, cfg(name))
    m.predict_then_train(*batch(8))
    graph = m._step_fn.get_concrete_function().graph
    tables = [m.variables()[n].handle for n in m.sparse_names()]
    inner = [internal for external, internal in graph.captures if any(external is t for t in tables)]
    assert len(inner) == len(tables)
    users = {op.type for op in graph.get_operations() for x in op.inputs if any(x is i for i in inner)}
    assert not {"ReadVariableOp", "ResourceApplyAdagrad"} & users, users  # full read / dense update
    assert {"ResourceGather", "ResourceSparseApplyAdagrad"} <= users, users


def test_dense_optimizer_is_separate() -> None:
    slow = OptimizerConfig(name="sgd", learning_rate=1e-12)
    m = build_model(LAYOUT, cfg("deepfm", dense_optimizer=slow))
    before = {n: v.numpy() for n, v in m.variables().items()}
    m.predict_then_train(*batch(64))
    for n, v in m.variables().items():
        delta = np.abs(v.numpy() - before[n]).max()
        assert (delta > 1e-4) if n in m.sparse_names() else (delta < 1e-6), (n, delta)
    assert any(k.endswith("/accumulator") for k in m.slot_variables())


def test_seeded_init() -> None:
    a, b, c = (build_model(LAYOUT, cfg("deepfm", seed=s)) for s in (1, 1, 2))
    for n, v in a.variables().items():
        np.testing.assert_array_equal(v.numpy(), b.variables()[n].numpy())
    assert not np.array_equal(a.variables()["emb"].numpy(), c.variables()["emb"].numpy())


def test_fm_and_deepfm_learn_interactions_lr_cannot() -> None:
    ids, dense, y = interaction_stream(300 * 128, seed=0)
    t_ids, t_dense, t_y = interaction_stream(4000, seed=1)
    auc = {}
    for name in BUILTIN:
        m = build_model(LAYOUT, cfg(name))
        for i in range(0, len(y), 128):
            m.predict_then_train(ids[i : i + 128], dense[i : i + 128], y[i : i + 128])
        auc[name] = roc_auc_score(t_y, m.predict(t_ids, t_dense).numpy())
    assert auc["lr"] < 0.7, auc
    assert auc["fm"] > 0.85 and auc["deepfm"] > 0.85, auc
    assert min(auc["fm"], auc["deepfm"]) > auc["lr"] + 0.15, auc


@pytest.mark.parametrize("name", ["fm", "deepfm"])
def test_field_weights_start_as_a_plain_fm_and_learn_pairs(name: str) -> None:
    plain, fw = build_model(LAYOUT, cfg(name)), build_model(LAYOUT, cfg(name, field_weights=True))
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(16, LAYOUT.n_ids, 4)).astype(np.float32)
    dense = rng.normal(size=(16, LAYOUT.n_dense)).astype(np.float32)
    v_dense = rng.normal(size=(LAYOUT.n_dense, 4)).astype(np.float32)
    plain.emb_dense.assign(v_dense)
    fw.emb_dense.assign(v_dense)
    np.testing.assert_allclose(fw.fm_term(emb, dense).numpy(), plain.fm_term(emb, dense).numpy(), rtol=1e-4,
                               atol=1e-4)  # all weights 1: the plain pairwise term
    ids, dense, y = interaction_stream(300 * 128, seed=0)
    for i in range(0, len(y), 128):
        fw.predict_then_train(ids[i : i + 128], dense[i : i + 128], y[i : i + 128])
    r = fw.variables()["fm_field_weights"].numpy()
    upper = np.triu(np.ones_like(r, bool), k=1)
    assert np.all(r[~upper] == 1.0) and np.abs(r[upper] - 1.0).max() > 1e-3  # only pairs i < j are weights
    t_ids, t_dense, t_y = interaction_stream(4000, seed=1)
    assert roc_auc_score(t_y, fw.predict(t_ids, t_dense).numpy()) > 0.85


@pytest.mark.parametrize("name", BUILTIN)
def test_micro_batches_learn_and_score_like_small_batches(name: str) -> None:
    micro, small = build_model(LAYOUT, cfg(name, micro_batch_rows=16)), build_model(LAYOUT, cfg(name))
    warm = batch(64, seed=3)
    micro.predict_then_train(*warm)
    for i in range(0, 64, 16):
        small.predict_then_train(*(x[i : i + 16] for x in warm))
    ids, dense, y = batch(40)  # 16 + 16 + 8 rows
    first = micro.predict(ids[:16], dense[:16]).numpy()
    scores = micro.predict_then_train(ids, dense, y).numpy()
    np.testing.assert_allclose(scores[:16], first, rtol=1e-6, atol=1e-7)  # scored before its step
    assert micro.version == 2  # one version per batch learnt
    small_scores = [small.predict_then_train(ids[i : i + 16], dense[i : i + 16], y[i : i + 16]).numpy()
                    for i in range(0, 40, 16)]
    np.testing.assert_allclose(scores, np.concatenate(small_scores), rtol=1e-5, atol=1e-6)
    for n, v in micro.variables().items():  # the same steps as batches of 16
        np.testing.assert_allclose(v.numpy(), small.variables()[n].numpy(), rtol=1e-5, atol=1e-6, err_msg=n)


def test_custom_model_by_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    m = build_model(LAYOUT, ModelConfig(name="custom_model:TinyModel"))
    assert type(m).__name__ == "TinyModel"
    ids, dense, y = batch(16)
    assert m.predict_then_train(ids, dense, y).shape == (16,) and m.version == 1
    assert set(m.variables()) == {"tiny_w", "tiny_b"}


def test_unknown_names() -> None:
    assert set(BUILTIN) <= set(known_models())
    with pytest.raises(ValueError, match=r"'nope'.*deepfm.*fm.*lr"):
        build_model(LAYOUT, ModelConfig(name="nope"))
    with pytest.raises(ValueError, match="cannot import"):
        build_model(LAYOUT, ModelConfig(name="no_such_module_xyz:Model"))
    with pytest.raises(ValueError, match="not a ModelBase subclass"):
        build_model(LAYOUT, ModelConfig(name="flinkdl.config.schema:ModelConfig"))


def test_raw_tf_ceiling_smoke() -> None:
    path = HERE.parents[1] / "bench" / "raw_tf.py"
    spec = importlib.util.spec_from_file_location("flinkdl_bench_raw_tf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ids, dense, y = interaction_stream(20 * 256, seed=0)
    out = mod.raw_tf_ceiling(cfg("fm"), LAYOUT, ids, dense, y, batch_size=256)
    assert out["rows_per_s"] > 0 and 0.6 < out["auc"] <= 1.0, out


def test_lr_scales_reparametrise_without_changing_the_start() -> None:
    """``embedding_lr_scale`` / ``linear_lr_scale``: the same model at the start, larger steps on its parts."""
    ids, dense, y = batch(256)
    base = build_model(LAYOUT, cfg("fm"))
    fast = build_model(LAYOUT, cfg("fm", embedding_lr_scale=2.0, linear_lr_scale=2.0))
    np.testing.assert_allclose(fast.predict(ids, dense).numpy(), base.predict(ids, dense).numpy(), rtol=1e-5)
    e0, fe0 = base.embed(ids).numpy(), fast.embed(ids).numpy()
    base.predict_then_train(ids, dense, y)
    fast.predict_then_train(ids, dense, y)
    moved = np.abs(base.embed(ids).numpy() - e0).mean()
    assert np.abs(fast.embed(ids).numpy() - fe0).mean() > 1.5 * moved
    zero = np.zeros_like(dense)

    def first_order(m: ModelBase) -> float:  # the id weights' part of the logit (no dense, no bias)
        return float(np.abs(m.linear(ids, zero).numpy() - m.bias.numpy()[0]).mean())

    assert first_order(fast) > 1.5 * first_order(base) > 0
