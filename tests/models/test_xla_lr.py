"""LR's XLA step (model.xla_step): the generic step's scores, weights and optimizer state to float32 rounding;
where ``auto`` takes it, a bounded number of compiled shapes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from flinkdl.config.dynamic import DynamicConfig
from flinkdl.config.ensemble import EnsembleConfig
from flinkdl.config.loader import load_config
from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.config.target_stats import TargetStatsConfig
from flinkdl.exchange.schema import Bag, FeatureLayout
from flinkdl.models import build_model, xla_lr
from flinkdl.models.xla_lr import XlaLrStep, for_job, unsupported

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


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The XLA step for batches of any size (a job's take it from MIN_ROWS rows): small, fast tests."""
    monkeypatch.setattr(xla_lr, "MIN_ROWS", 1)


def pair(**kw):
    return [build_model(LAYOUT, ModelConfig(name="lr", optimizer=ADAGRAD, xla_step=x, **kw)) for x in (False, "auto")]


@pytest.mark.parametrize("weighted", [False, True])
def test_same_scores_weights_and_state(weighted: bool) -> None:
    generic, xla = pair()
    assert isinstance(xla._fast_step, XlaLrStep) and generic._fast_step is None
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
def test_refused_where_the_formulas_differ(kw: dict, layout: FeatureLayout, want: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match=rf"model\.xla_step needs .*{want}"):
        build_model(layout, ModelConfig(name="lr", xla_step=True, **kw))
    with caplog.at_level(logging.INFO, logger=xla_lr.__name__):
        model = build_model(layout, ModelConfig(name="lr", **kw))  # auto: the generic step, one line says why
    assert model._fast_step is None
    why = unsupported(model.cfg, bool(layout.bags))
    assert [r.getMessage() for r in caplog.records] == [
        f"model.xla_step=auto: lr takes the generic step (the XLA step needs {why})"]
    assert want in caplog.records[0].getMessage()


def test_auto_logs_the_xla_step_and_false_never_takes_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=xla_lr.__name__):
        assert isinstance(build_model(LAYOUT, ModelConfig(name="lr"))._fast_step, XlaLrStep)
    assert [r.getMessage() for r in caplog.records] == ["model.xla_step=auto: lr takes its XLA-compiled step"]
    assert build_model(LAYOUT, ModelConfig(name="lr", xla_step=False))._fast_step is None


def test_only_lr() -> None:
    with pytest.raises(ValueError, match="only lr"):
        build_model(LAYOUT, ModelConfig(name="fm", xla_step=True))
    for name in ("fm", "deepfm"):  # auto: their generic step, no error
        assert build_model(LAYOUT, ModelConfig(name=name))._fast_step is None


def test_shapes_are_padded_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of many sizes compile a few padded shapes; past MAX_PROGRAMS the generic step takes them."""
    generic, xla = pair()
    for ids, dense, y, _ in stream(30, 150):  # 150-152 rows: one padded row count (160)
        np.testing.assert_allclose(xla.predict_then_train(ids, dense, y).numpy(),
                                   generic.predict_then_train(ids, dense, y).numpy(), rtol=0, atol=1e-6)
    step = xla._fast_step
    assert isinstance(step, XlaLrStep) and step.shapes == {(4096, 160)}
    monkeypatch.setattr(xla_lr, "MAX_PROGRAMS", 3)
    for k, (ids, dense, y, _) in enumerate(stream(12, 1, seed=1)):
        n = 1 + 37 * k  # 1 .. 408 rows: 10 padded row counts
        ids, dense, y = np.resize(ids, (n, LAYOUT.n_ids)), np.resize(dense, (n, LAYOUT.n_dense)), np.resize(y, n)
        np.testing.assert_allclose(xla.predict_then_train(ids, dense, y).numpy(),
                                   generic.predict_then_train(ids, dense, y).numpy(), rtol=0, atol=1e-6)
    assert len(step.shapes) == 3 and xla.version == generic.version == 42


def job(*sets: str):
    return load_config(None, ["model.name=lr", "model.micro_batch_rows=null", "model.dense_optimizer=null", *sets])


def test_the_job_around_the_model() -> None:
    """Synchronous steps rule the XLA step out (auto: off; true: an error); a GPU keeps auto on the generic step."""
    assert for_job(job()).xla_step == "auto"
    sync = ["job.parallelism=2", "parallel.sync_steps=true", "ps.enabled=true"]
    assert for_job(job(*sync)).xla_step is False
    assert for_job(job(*sync, "job.parallelism=1")).xla_step == "auto"
    with pytest.raises(ValueError, match=r"model\.xla_step needs no parallel\.sync_steps"):
        for_job(job(*sync, "model.xla_step=true"))
    assert unsupported(job().model, False, sync_steps=True) == xla_lr.SYNC_STEPS
    assert for_job(job("worker.device=gpu")).xla_step is False
    assert for_job(job("worker.device=gpu", "model.xla_step=true")).xla_step is True


@pytest.mark.parametrize("kw", [
    {"name": "ensemble", "ensemble": EnsembleConfig(base="lr")},  # lr x1, x1/2, x2
    {"name": "dynamic", "dynamic": DynamicConfig(base="lr", capacity=200, ttl_steps=4)},  # rows evicted, reset
], ids=["ensemble", "dynamic"])
def test_models_wrapping_lr_take_it(kw: dict) -> None:
    generic, xla = (build_model(LAYOUT, ModelConfig(optimizer=ADAGRAD, xla_step=x, **kw)) for x in (False, "auto"))
    inner = list(xla.members.values()) if kw["name"] == "ensemble" else [xla.inner]
    assert all(isinstance(m._fast_step, XlaLrStep) for m in inner)
    for ids, dense, y, w in stream(10, 100):
        np.testing.assert_allclose(xla.predict_then_train(ids, dense, y, weights=w).numpy(),
                                   generic.predict_then_train(ids, dense, y, weights=w).numpy(), rtol=0, atol=1e-6)
    for name, v in generic.slot_variables().items():
        np.testing.assert_allclose(xla.slot_variables()[name].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)


def test_small_batches_take_the_generic_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xla_lr, "MIN_ROWS", 120)
    generic, xla = pair()
    for k, (ids, dense, y, _) in enumerate(stream(6, 118)):  # 118, 119, 120, 118, ... rows
        np.testing.assert_allclose(xla.predict_then_train(ids, dense, y).numpy(),
                                   generic.predict_then_train(ids, dense, y).numpy(), rtol=0, atol=1e-6)
        assert xla._fast_step.shapes == (set() if k < 2 else {(4096, 128)})
    assert xla.version == generic.version == 6


def test_a_rare_shape_runs_in_a_larger_program() -> None:
    """A stream's last, partial batch compiles nothing; a smaller shape that recurs gets its own program."""
    generic, xla = pair()
    sizes = [300, 300, 100, *[100] * xla_lr.RECUR]
    for n, (ids, dense, y, _) in zip(sizes, stream(len(sizes), 1, seed=2), strict=True):
        ids, dense, y = np.resize(ids, (n, LAYOUT.n_ids)), np.resize(dense, (n, LAYOUT.n_dense)), np.resize(y, n)
        np.testing.assert_allclose(xla.predict_then_train(ids, dense, y).numpy(),
                                   generic.predict_then_train(ids, dense, y).numpy(), rtol=0, atol=1e-6)
        if xla.version == 3 + xla_lr.RECUR - 1:
            assert xla._fast_step.shapes == {(4096, 320)}  # the 100-row batches ran padded to 320 rows
    assert xla._fast_step.shapes == {(4096, 320), (4096, 112)}
