"""DecayedAdagradOptimizer: Adagrad at decay 1, forgetting below, capped accumulators, sparse rows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from flinkdl.models.decayed_adagrad import DecayedAdagradOptimizer


def _steps(opt: tf.compat.v1.train.Optimizer, grads: list[np.ndarray], sparse: bool) -> tuple[np.ndarray, np.ndarray]:
    var = tf.Variable(np.zeros((4, 2), np.float32))
    for g in grads:
        if sparse:  # rows 1 and 3 only
            opt.apply_gradients([(tf.IndexedSlices(tf.constant(g[[1, 3]]), tf.constant([1, 3]), tf.constant([4, 2])),
                                  var)])
        else:
            opt.apply_gradients([(tf.constant(g), var)])
    return var.numpy(), opt.get_slot(var, "accumulator").numpy()


def test_decay_one_is_adagrad_dense_and_sparse() -> None:
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(4, 2)).astype(np.float32) for _ in range(5)]
    for sparse in (False, True):
        w, acc = _steps(DecayedAdagradOptimizer(0.1, 1.0), grads, sparse)
        w0, acc0 = _steps(tf.compat.v1.train.AdagradOptimizer(0.1, 1.0), grads, sparse)
        np.testing.assert_allclose(w, w0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(acc, acc0, rtol=1e-5)


def test_decay_and_cap_keep_steps_from_shrinking() -> None:
    grads = [np.ones((4, 2), np.float32)] * 200
    _, acc = _steps(DecayedAdagradOptimizer(0.1, 1.0, decay=0.9), grads, sparse=True)
    assert np.allclose(acc[[1, 3]], 10.0, rtol=1e-3)  # 1 / (1 - 0.9): the step stays near lr / sqrt(10)
    assert np.allclose(acc[[0, 2]], 1.0)  # untouched rows keep their initial value
    w, acc = _steps(DecayedAdagradOptimizer(0.1, 1.0, max_accumulator=4.0), grads, sparse=False)
    assert np.allclose(acc, 4.0)
    assert np.allclose(w, -0.1 * (1 / np.sqrt(2) + 1 / np.sqrt(3) + 198 / 2), rtol=1e-4)


def test_in_a_model_only_touched_rows_change_and_no_table_is_read_whole() -> None:
    from flinkdl.config.schema import ModelConfig, OptimizerConfig
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model

    layout = FeatureLayout(n_ids=4, n_dense=2, buckets=1 << 12)
    opt = OptimizerConfig(learning_rate=0.1, accumulator_decay=0.99, max_accumulator=50.0)
    m = build_model(layout, ModelConfig(name="deepfm", embedding_dim=4, hidden=[16], optimizer=opt))
    rng = np.random.default_rng(0)
    for _ in range(2):
        ids = rng.integers(0, layout.buckets, (32, layout.n_ids), dtype=np.int64)
        dense, y = rng.normal(size=(32, 2)).astype(np.float32), (rng.random(32) < 0.4).astype(np.float32)
        before = {n: m.variables()[n].numpy() for n in m.sparse_names()}
        m.predict_then_train(ids, dense, y)
    touched = np.zeros(layout.buckets, bool)
    touched[ids.ravel()] = True
    for n, old in before.items():
        new = m.variables()[n].numpy()
        assert np.array_equal(new[~touched], old[~touched]), n
        assert np.any(new != old, axis=1)[touched].mean() > 0.9, n
    graph = m._step_fn.get_concrete_function().graph
    tables = [m.variables()[n].handle for n in m.sparse_names()]
    inner = [internal for external, internal in graph.captures if any(external is t for t in tables)]
    users = {op.type for op in graph.get_operations() for x in op.inputs if any(x is i for i in inner)}
    assert "ReadVariableOp" not in users, users  # gathers and scatters only: O(rows touched) per step
