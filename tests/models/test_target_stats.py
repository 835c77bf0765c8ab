"""Per-id target statistics (``model.target_stats``): prequential counts, the features, no gradient."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.config.schema import ModelConfig
from flinkdl.config.target_stats import TargetStatsConfig
from flinkdl.exchange.schema import Bag, FeatureLayout
from flinkdl.models import build_model
from flinkdl.models.target_stats import TABLE, TOTAL, n_features

LAYOUT = FeatureLayout(n_ids=3, n_dense=2, buckets=64)


def cfg(name: str = "deepfm", **kw) -> ModelConfig:
    return ModelConfig(name=name, embedding_dim=4, hidden=[8], target_stats=TargetStatsConfig(**kw))


def test_counts_each_step_after_scoring_it() -> None:
    m = build_model(LAYOUT, cfg("lr", prior=2.0))
    ids = np.array([[1, 2, 3], [1, 5, 6]], np.int64)
    dense = np.zeros((2, 2), np.float32)
    before = m.target_stats.features(ids).numpy()
    assert np.allclose(before[0], [0, 0, 0, 1, 1, 1])  # no counts: every id at the global rate, all new
    m.predict_then_train(ids, dense, np.array([1.0, 0.0], np.float32))
    table, total = m.variables()[TABLE].numpy(), m.variables()[TOTAL].numpy()
    assert table[1].tolist() == [2.0, 1.0] and table[2].tolist() == [1.0, 1.0] and table[5].tolist() == [1.0, 0.0]
    assert total.tolist() == [2.0, 1.0]
    feats = m.target_stats.features(np.array([[2, 5, 9]], np.int64)).numpy()[0]
    p = (1 + 1) / (2 + 2)  # the global rate, smoothed
    rate2, rate5 = (1 + 2 * p) / (1 + 2), (0 + 2 * p) / (1 + 2)
    logit = lambda q: np.log(q / (1 - q))  # noqa: E731
    assert np.allclose(feats[:3], [logit(rate2) - logit(p), logit(rate5) - logit(p), 0.0], atol=1e-6)
    assert np.allclose(feats[3:], [2 / 3, 2 / 3, 1.0], atol=1e-6)  # prior / (shows + prior)


def test_the_scores_of_a_step_do_not_see_its_own_labels() -> None:
    """A step's rows are scored with the counts before it: the same scores with any labels."""
    ids = np.array([[7, 8, 9]] * 4, np.int64)
    dense = np.zeros((4, 2), np.float32)
    a = build_model(LAYOUT, cfg()).predict_then_train(ids, dense, np.ones(4, np.float32)).numpy()
    b = build_model(LAYOUT, cfg()).predict_then_train(ids, dense, np.zeros(4, np.float32)).numpy()
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["lr", "fm", "deepfm"])
def test_no_gradient_and_no_optimizer_state_for_the_counts(name: str) -> None:
    m = build_model(LAYOUT, cfg(name, counts=False))
    assert TABLE in m.sparse_names() and m.n_dense == 2 + 3  # one rate per id column, no counts
    m.create_optimizer_state()
    assert not any(k.split("/")[0] in (TABLE, TOTAL) for k in m.slot_variables())
    rng = np.random.default_rng(0)
    for _ in range(5):
        ids = rng.integers(0, 64, (16, 3), dtype=np.int64)
        y = (rng.random(16) < 0.5).astype(np.float32)
        m.predict_then_train(ids, rng.normal(size=(16, 2)).astype(np.float32), y)
    assert m.variables()[TOTAL].numpy()[0] == 80  # counts only: no optimizer moved them
    assert m.variables()[TABLE].numpy()[:, 0].sum() == 80 * 3


def test_learns_a_rare_id_effect_from_its_rate() -> None:
    """Ids whose rate differs: the rate feature is what lets the model score a new batch's ids."""
    rng = np.random.default_rng(1)
    good = rng.random(60) < 0.5  # per id: click rate 0.8 or 0.2
    m = build_model(LAYOUT, cfg("lr"))
    for _ in range(60):
        v = rng.integers(0, 60, 32)
        y = (rng.random(32) < np.where(good[v], 0.8, 0.2)).astype(np.float32)
        ids = np.stack([v, 60 + v % 2, 62 + v % 2], axis=1).astype(np.int64)
        scores = m.predict_then_train(ids, np.zeros((32, 2), np.float32), y).numpy()
    assert scores[good[v]].mean() > scores[~good[v]].mean() + 0.2


def test_single_columns_only_and_off_by_default() -> None:
    bags = FeatureLayout(n_ids=4, n_dense=0, buckets=64, bags=(Bag(2, "sum"),))
    assert n_features(TargetStatsConfig(), bags.n_single) == 4 and n_features(None, 5) == 0
    assert build_model(bags, cfg()).n_dense == 4
    plain = build_model(LAYOUT, ModelConfig(name="deepfm", embedding_dim=4, hidden=[8]))
    assert plain.target_stats is None and TABLE not in plain.variables()


def test_an_ensemble_counts_in_its_members() -> None:
    m = build_model(LAYOUT, cfg().model_copy(update={"name": "ensemble"}))
    assert m.target_stats is None
    assert {n for n in m.variables() if n.endswith(TABLE)} == {f"{k}.{TABLE}" for k in m.members}
