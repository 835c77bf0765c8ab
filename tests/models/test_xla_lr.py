"""LR's XLA step (model.xla_step): the generic step's scores, weights and optimizer state to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.config.target_stats import TargetStatsConfig
from flinkdl.exchange.schema import Bag, FeatureLayout
from flinkdl.models import build_model

LAYOUT = FeatureLayout(n_ids=5, n_dense=3, buckets=1 << 10)
ADAGRAD = OptimizerConfig(name="adagrad", learning_rate=0.05, initial_accumulator=1.0)


def stream(steps: int, rows: int, seed: int = 0):
    """Batches of varying size over a small vocabulary (ids repeat within and across batches)."""
    rng = np.random.default_rng(seed)
    for k in range(steps):
        n = rows + k % 3
        ids = rng.integers(0, 300, (n, LAYOUT.n_ids), dtype=np.int64)
        dense = rng.normal(size=(n, LAYOUT.n_dense)).astype(np.float32)
        yield ids, dense, (rng.random(n) < 0.3).astype(np.float32), rng.random(n).astype(np.float32)


def pair(**kw):
    return [build_model(LAYOUT, ModelConfig(name="lr", optimizer=ADAGRAD, xla_step=x, **kw)) for x in (False, True)]


@pytest.mark.parametrize("weighted", [False, True])
def test_same_scores_weights_and_state(weighted: bool) -> None:
    generic, xla = pair()
    for ids, dense, y, w in stream(12, 200):
        labelled = np.ones(len(y), bool)
        labelled[::7] = False  # some rows only scored: the step learns from the others
        extra = {"weights": w} if weighted else {}
        a = generic.predict_then_train(ids, dense, y, labelled, **extra).numpy()
        b = xla.predict_then_train(ids, dense, y, labelled, **extra).numpy()
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert xla.version == generic.version == 12
    for name, v in generic.variables().items():
        np.testing.assert_allclose(xla.variables()[name].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
    slots = generic.slot_variables()
    assert set(xla.slot_variables()) == set(slots)
    for name, v in slots.items():
        np.testing.assert_allclose(xla.slot_variables()[name].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
    touched = np.flatnonzero(generic.variables()["lr_w"].numpy()[:, 0])
    assert 0 < len(touched) <= 300  # only the stream's rows moved (the padded ids wrote nothing)


@pytest.mark.parametrize(("kw", "layout", "want"), [
    ({"micro_batch_rows": 64}, LAYOUT, "one step a batch"),
    ({"dense_optimizer": OptimizerConfig(name="adam")}, LAYOUT, "one adagrad optimizer"),
    ({"optimizer": OptimizerConfig(name="ftrl")}, LAYOUT, "one adagrad optimizer"),
    ({"optimizer": OptimizerConfig(name="adagrad", l2=0.1)}, LAYOUT, "plain adagrad"),
    ({}, FeatureLayout(n_ids=4, n_dense=1, buckets=64, bags=(Bag(3),)), "no bags"),
    ({"target_stats": TargetStatsConfig()}, LAYOUT, "no target_stats"),
])
def test_refused_where_the_formulas_differ(kw: dict, layout: FeatureLayout, want: str) -> None:
    with pytest.raises(ValueError, match=want):
        build_model(layout, ModelConfig(name="lr", xla_step=True, **kw))


def test_only_lr() -> None:
    with pytest.raises(ValueError, match="only lr"):
        build_model(LAYOUT, ModelConfig(name="fm", xla_step=True))
