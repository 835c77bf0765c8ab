"""ES-DFM's elapsed-time model on a real parameter server: committed with the main model, restored with it."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from flinkdl.config.esdfm import EsDfmConfig
from flinkdl.config.schema import ModelConfig, PsConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.feedback.esdfm_rows import encode_code, weight_column
from flinkdl.models import build_model
from flinkdl.models.base import ModelBase
from flinkdl.ps.client import PsClient
from flinkdl.worker.hooks import Batch, StepHook
from flinkdl.worker.hooks.esdfm import EsDfmHook
from flinkdl.worker.hooks.ps import PsHook
from flinkdl.worker.process import run_step
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import PsProcess

LAYOUT = FeatureLayout(n_ids=2, n_dense=1, buckets=64)
ROWS = 32


def _batch(i: int) -> Batch:
    """Served rows, fake negatives, delayed positives and real negatives at varied elapsed times."""
    rng = np.random.default_rng(i)
    kind = rng.integers(0, 4, ROWS)  # 0 served, 1 fake negative, 2 positive, 3 real negative
    labels = np.choose(kind, [np.nan, 0.0, 1.0, 0.0]).astype(np.float32)
    codes = [encode_code(0 if k == 1 else int(e), k == 3) for k, e in zip(kind, rng.integers(0, 60_000, ROWS),
                                                                         strict=True)]
    ids = rng.integers(0, LAYOUT.buckets, (ROWS, 2)).astype(np.int64)
    return Batch(tf.constant(np.arange(ROWS, dtype=np.int64) + i * ROWS), tf.constant(labels), tf.constant(ids),
                 tf.constant(rng.random((ROWS, 1), np.float32)), tf.constant(weight_column(codes)))


def _worker(address: str) -> tuple[ModelBase, list[StepHook]]:
    """A worker as build_hooks makes it under exactly-once at parallelism 1: it loads both models from the PS."""
    model = build_model(LAYOUT, ModelConfig(name="lr", seed=3))
    cfg = PsConfig(enabled=True, address=address, push_every_batches=2)
    hooks: list[StepHook] = [PsHook(PsSync(model, cfg, LAYOUT.buckets, commit_every_push=True, single_writer=True))]
    hooks.append(EsDfmHook.after(hooks, LAYOUT, EsDfmConfig(warmup_labels=5)))
    return model, hooks


def _state(model: ModelBase, hook: StepHook) -> dict[str, np.ndarray]:
    assert isinstance(hook, EsDfmHook)
    out = {f"main/{k}": v.numpy() for k, v in {**model.variables(), **model.slot_variables()}.items()}
    for head, aux in (("dp", hook.aux.dp), ("rn", hook.aux.rn)):
        out.update({f"{head}/{k}": v.numpy() for k, v in {**aux.variables(), **aux.slot_variables()}.items()})
    out["seen"] = hook.aux.seen.copy()
    return out


def _assert_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_a_restore_brings_the_elapsed_time_model_back_to_the_anchor_and_the_replay_to_the_same_end(tmp_path):
    ps = PsProcess(tmp_path / "ps")
    try:
        model, hooks = _worker(ps.address)
        for i in range(4):
            run_step(model, hooks, _batch(i))
        anchor = hooks[0].sync.committed  # type: ignore[attr-defined]
        assert anchor is not None
        at_anchor = _state(model, hooks[1])
        assert hooks[1].aux.warm  # type: ignore[attr-defined]  # the weights of the batches below use the model
        for i in range(4, 8):
            run_step(model, hooks, _batch(i))
        uncrashed = _state(model, hooks[1])
        assert not np.array_equal(at_anchor["dp/lr_w"], uncrashed["dp/lr_w"])
        # the worker dies (nothing closed); the trainer rolls the PS back to its anchor and starts another
        with PsClient.from_config(PsConfig(address=ps.address)) as client:
            client.rollback(anchor)
        model, hooks = _worker(ps.address)
        _assert_equal(_state(model, hooks[1]), at_anchor)
        for i in range(4, 8):  # the tail, replayed: the same weights, the same models
            run_step(model, hooks, _batch(i))
        _assert_equal(_state(model, hooks[1]), uncrashed)
        for hook in reversed(hooks):
            hook.close()
    finally:
        ps.stop()
