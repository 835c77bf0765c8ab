"""The ensemble model: variants trained side by side, prequential, served by decayed log loss."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.config.ensemble import EnsembleConfig, VariantConfig
from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.evaluation.maths import log_losses
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model
from flinkdl.models.ensemble import Ensemble, variant_configs
from tests.models.test_models import LAYOUT, batch, interaction_stream


def ens_cfg(serve: str = "mixture", variants: list[VariantConfig] | None = None, base: str = "fm",
            **kw) -> ModelConfig:
    ens = EnsembleConfig(base=base, serve=serve, **({"variants": variants} if variants else {}), **kw)
    return ModelConfig(name="ensemble", embedding_dim=4, hidden=[16], ensemble=ens,
                       optimizer=OptimizerConfig(learning_rate=0.1),
                       dense_optimizer=OptimizerConfig(name="adam", learning_rate=0.01))


def test_default_variants_scale_both_learning_rates_and_name_every_variable() -> None:
    cfgs = dict(variant_configs(ens_cfg()))
    assert list(cfgs) == ["fm_x1", "fm_x0.5", "fm_x2"]
    assert [c.optimizer.learning_rate for c in cfgs.values()] == [0.1, 0.05, 0.2]
    assert [c.dense_optimizer.learning_rate for c in cfgs.values() if c.dense_optimizer] == [0.01, 0.005, 0.02]
    m = build_model(LAYOUT, ens_cfg())
    assert isinstance(m, Ensemble)
    assert m.sparse_names() == {f"{v}.{t}" for v in cfgs for t in ("lr_w", "emb")}
    names = set(m.variables())
    assert {"ensemble.loss", "ensemble.events", "fm_x2.bias", "fm_x0.5.emb_dense"} <= names
    m.create_optimizer_state()
    assert "fm_x1.emb/accumulator" in m.slot_variables()
    assert any(k.startswith("fm_x2.optimizer1/") for k in m.dense_optimizer_state())  # Adam's beta powers


def test_variants_of_other_models_and_bad_configs() -> None:
    mixed = [VariantConfig(model={"name": "lr"}), VariantConfig(id="wide", model={"name": "fm", "embedding_dim": 2})]
    cfgs = dict(variant_configs(ens_cfg(variants=mixed)))
    assert [(k, c.name) for k, c in cfgs.items()] == [("lr_x1", "lr"), ("wide", "fm")]
    assert cfgs["wide"].embedding_dim == 2 and cfgs["wide"].optimizer.learning_rate == 0.1
    with pytest.raises(ValueError, match="not distinct"):
        variant_configs(ens_cfg(variants=[VariantConfig(), VariantConfig()]))
    with pytest.raises(ValueError, match="cannot be a variant"):
        variant_configs(ens_cfg(variants=[VariantConfig(model={"name": "ensemble"})]))
    with pytest.raises(ValueError):
        EnsembleConfig(base="ensemble")
    with pytest.raises(ValueError):
        VariantConfig(id="has space")


def test_each_variant_is_exactly_its_own_prequential_model_and_the_served_score_mixes_them() -> None:
    cfg = ens_cfg()
    m = build_model(LAYOUT, cfg)
    alone = {vid: build_model(LAYOUT, mc) for vid, mc in variant_configs(cfg)}
    for i in range(6):
        ids, dense, y = batch(64, seed=i)
        w = m.weights()
        served = m.predict_then_train(ids, dense, y).numpy()
        mix = np.zeros(64)
        for k, (vid, a) in enumerate(alone.items()):
            s = a.predict_then_train(ids, dense, y).numpy()
            np.testing.assert_array_equal(m.last_scores[vid], s)  # the same step, bit for bit
            mix += w[k] * s
        np.testing.assert_allclose(served, mix, rtol=1e-6)
    assert m.version == 6 and all(a.version == 6 for a in alone.values())


def test_best_and_mixture_follow_the_variant_with_the_least_recent_log_loss() -> None:
    variants = [VariantConfig(id="tiny", lr_scale=0.001), VariantConfig(id="good", lr_scale=1.0)]
    ids, dense, y = interaction_stream(6000, seed=1)
    for serve in ("best", "mixture"):
        m = build_model(LAYOUT, ens_cfg(serve, variants, half_life=2000))
        served, per = [], {"tiny": [], "good": []}
        for a in range(0, len(y), 200):
            served.append(m.predict_then_train(ids[a:a + 200], dense[a:a + 200], y[a:a + 200]).numpy())
            for k in per:
                per[k].append(m.last_scores[k])
        w = m.weights()
        assert w[1] > 0.99, (serve, w)
        state = {s["id"]: s for s in m.variant_state()}
        assert state["good"]["recent_logloss"] < state["tiny"]["recent_logloss"]
        pos = y > 0.5
        loss = {k: log_losses(pos, np.concatenate(v)).mean() for k, v in per.items()}
        ours = log_losses(pos, np.concatenate(served)).mean()
        # the served stream is about as good as the better variant's (regret ~ ln K / events)
        assert ours < loss["tiny"] and ours < loss["good"] + 0.01, (serve, ours, loss)
        # predict (export, serving) serves the same weights in the graph
        p = m.predict(ids[:50], dense[:50]).numpy()
        ref = w @ np.stack([mm.predict(ids[:50], dense[:50]).numpy() for mm in m.members.values()])
        np.testing.assert_allclose(p, ref, atol=1e-5)


def test_first_is_a_shadow_mode_and_unlabelled_rows_move_nothing() -> None:
    variants = [VariantConfig(id="live", lr_scale=0.001), VariantConfig(id="shadow")]
    m = build_model(LAYOUT, ens_cfg("first", variants))
    ids, dense, y = interaction_stream(2000, seed=2)
    for a in range(0, 2000, 250):
        served = m.predict_then_train(ids[a:a + 250], dense[a:a + 250], y[a:a + 250]).numpy()
        np.testing.assert_array_equal(served, m.last_scores["live"])
    assert list(m.weights()) == [1.0, 0.0]
    state = {s["id"]: s["recent_logloss"] for s in m.variant_state()}
    assert state["shadow"] < state["live"]  # reported, never served
    loss, version = m.loss.numpy().copy(), m.version
    ids, dense, _ = batch(8, seed=9)
    m.predict_then_train(ids, dense, np.full(8, np.nan, np.float32), np.zeros(8, bool))
    np.testing.assert_array_equal(m.loss.numpy(), loss)
    assert m.version == version


def test_an_ensemble_restored_from_its_variables_serves_the_same() -> None:
    cfg = ens_cfg("best")
    a, b = build_model(LAYOUT, cfg), build_model(LAYOUT, cfg)
    for i in range(4):
        a.predict_then_train(*batch(128, seed=i))
    for name, var in b.variables().items():
        var.assign(a.variables()[name])
    ids, dense, _ = batch(32, seed=99)
    np.testing.assert_array_equal(a.predict(ids, dense).numpy(), b.predict(ids, dense).numpy())
    np.testing.assert_array_equal(a.weights(), b.weights())


def test_lr_fm_deepfm_side_by_side_with_a_bigger_layout() -> None:
    layout = FeatureLayout(n_ids=3, n_dense=1, buckets=1 << 10)
    variants = [VariantConfig(model={"name": n}) for n in ("lr", "fm", "deepfm")]
    m = build_model(layout, ens_cfg("mixture", variants))
    ids, dense, y = batch(40, seed=3, layout=layout)
    out = m.predict_then_train(tf.constant(ids), tf.constant(dense), tf.constant(y))
    assert out.shape == (40,) and set(m.last_scores) == {"lr_x1", "fm_x1", "deepfm_x1"}
    np.testing.assert_allclose(m.weights().sum(), 1.0)
