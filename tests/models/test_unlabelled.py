"""A step on a batch with unlabelled rows: they are scored and change nothing (``predict_then_train(labelled=)``)."""

from __future__ import annotations

import numpy as np
import pytest

from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import ModelBase, build_model

LAYOUT = FeatureLayout(n_ids=4, n_dense=2, buckets=1 << 12)

OPTIMIZERS = {  # sparse tables, dense variables
    "adagrad": (OptimizerConfig(name="adagrad", learning_rate=0.1), None),
    "ftrl+adam": (OptimizerConfig(name="ftrl", learning_rate=0.1), OptimizerConfig(name="adam", learning_rate=0.01)),
    "sgd": (OptimizerConfig(name="sgd", learning_rate=0.5), None),
}


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 64, (n, LAYOUT.n_ids), dtype=np.int64)  # few ids: rows share them
    dense = rng.normal(size=(n, LAYOUT.n_dense)).astype(np.float32)
    return ids, dense, (rng.random(n) < 0.4).astype(np.float32)


def _model(name: str, opt: str, micro: int | None = None) -> ModelBase:
    sparse, dense = OPTIMIZERS[opt]
    m = build_model(LAYOUT, ModelConfig(name=name, embedding_dim=4, hidden=[16], optimizer=sparse,
                                        dense_optimizer=dense, micro_batch_rows=micro))
    m.create_optimizer_state()
    return m


def _state(m: ModelBase) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in {**m.variables(), **m.dense_optimizer_state(), **m.slot_variables()}.items()}


def _assert_same(a: ModelBase, b: ModelBase, atol: float = 1e-6) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=0, atol=atol, err_msg=k)
    assert a.version == b.version


@pytest.mark.parametrize("micro", [None, 8])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("name", ["lr", "fm", "deepfm"])
def test_unlabelled_rows_change_nothing(name: str, opt: str, micro: int | None) -> None:
    """Training on a batch with unlabelled rows == training on its labelled rows alone (1e-6), and
    the unlabelled rows' scores are those of the model before the step."""
    mixed, alone = _model(name, opt, micro), _model(name, opt, micro)
    for step in range(3):
        ids, dense, y = batch(40, seed=step)
        mask = np.random.default_rng(100 + step).random(40) < 0.6
        y_nan = np.where(mask, y, np.nan).astype(np.float32)
        before = alone.predict(ids, dense).numpy()
        scores = mixed.predict_then_train(ids, dense, y_nan, labelled=mask).numpy()
        scores_alone = alone.predict_then_train(ids[mask], dense[mask], y[mask]).numpy()
        np.testing.assert_allclose(scores[mask], scores_alone, rtol=0, atol=1e-6)
        np.testing.assert_allclose(scores[~mask], before[~mask], rtol=0, atol=1e-6)
        _assert_same(mixed, alone)
    assert mixed.version == 3


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_a_batch_without_labels_is_only_scored(opt: str) -> None:
    m, ref = _model("deepfm", opt), _model("deepfm", opt)
    ids, dense, y = batch(16)
    m.predict_then_train(ids, dense, y)
    ref.predict_then_train(ids, dense, y)
    ids2, dense2, _ = batch(16, seed=1)
    scores = m.predict_then_train(ids2, dense2, np.full(16, np.nan, np.float32), labelled=np.zeros(16, bool))
    np.testing.assert_array_equal(scores.numpy(), ref.predict(ids2, dense2).numpy())
    _assert_same(m, ref, atol=0)  # not a bit moved, optimizer state included; version stays 1


def test_every_row_labelled_is_the_plain_step_bit_for_bit() -> None:
    a, b = _model("deepfm", "ftrl+adam", 8), _model("deepfm", "ftrl+adam", 8)
    for step in range(2):
        ids, dense, y = batch(20, seed=step)
        sa = a.predict_then_train(ids, dense, y, labelled=np.ones(20, bool)).numpy()
        sb = b.predict_then_train(ids, dense, y).numpy()
        np.testing.assert_array_equal(sa, sb)
    _assert_same(a, b, atol=0)
