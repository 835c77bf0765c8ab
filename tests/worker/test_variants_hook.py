"""The ensemble's variant metrics: per-variant progressive and window quality, Prometheus, the run report."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from prometheus_client import generate_latest

from flinkdl.config.ensemble import EnsembleConfig, VariantConfig
from flinkdl.config.schema import JobConfig, ModelConfig
from flinkdl.evaluation.metrics import LogLoss, auc_from_arrays
from flinkdl.models.registry import build_model
from flinkdl.telemetry.exporter import MetricsEndpoint
from flinkdl.worker.hooks import Batch
from flinkdl.worker.hooks.variants import VariantsHook, read_reports
from flinkdl.worker.process import build_hooks, run_step
from tests.models.test_models import LAYOUT, interaction_stream


def test_every_variant_is_measured_on_its_own_scores_and_published(tmp_path):
    ens = EnsembleConfig(base="fm", serve="best", window_events=500,
                         variants=[VariantConfig(id="a"), VariantConfig(id="b", lr_scale=0.01)])
    model_cfg = ModelConfig(name="ensemble", embedding_dim=4, ensemble=ens)
    cfg = JobConfig.model_validate({"job": {"run_dir": str(tmp_path)}, "model": model_cfg.model_dump()})
    model = build_model(LAYOUT, cfg.model)
    endpoint = MetricsEndpoint(cfg, "worker")
    hook = VariantsHook(model, tmp_path, subtask=0, endpoint=endpoint, every_s=3600)
    ids, dense, y = interaction_stream(2000, seed=4)
    y[::7] = np.nan  # unlabelled rows: scored, not counted
    seen: dict[str, list] = {"a": [], "b": []}
    for s in range(0, 2000, 100):
        batch = Batch(tf.constant(np.arange(s, s + 100)), tf.constant(y[s:s + 100]), tf.constant(ids[s:s + 100]),
                      tf.constant(dense[s:s + 100]))
        run_step(model, [hook], batch)
        for v in seen:
            seen[v].append(model.last_scores[v][batch.labelled])
    hook.close()
    rows = {r["id"]: r for r in read_reports(tmp_path)}
    lab = y[~np.isnan(y)] > 0.5
    for v in ("a", "b"):
        s = np.concatenate(seen[v])
        ll = LogLoss()
        ll.update(lab, s)
        assert rows[v]["events"] == lab.size and rows[v]["subtask"] == 0
        assert abs(rows[v]["auc"] - auc_from_arrays(lab, s)) < 1e-3
        assert abs(rows[v]["logloss"] - ll.get()) < 1e-9
        assert abs(rows[v]["window_auc"] - auc_from_arrays(lab[-500:], s[-500:])) < 1e-9
    assert rows["a"]["weight"] == 1.0 and rows["b"]["weight"] == 0.0
    assert rows["a"]["window_auc"] > rows["b"]["window_auc"]
    text = generate_latest(endpoint.registry).decode()
    assert 'flinkdl_variant_weight{job="' in text and 'variant="b"' in text
    assert "flinkdl_variant_auc_window" in text and "flinkdl_variant_logloss_window" in text


def test_the_worker_builds_the_hook_for_an_ensemble_only(tmp_path):
    cfg = JobConfig.model_validate({"job": {"run_dir": str(tmp_path)},
                                    "model": {"name": "ensemble", "embedding_dim": 2,
                                              "ensemble": {"base": "lr"}}})
    hooks = build_hooks(cfg, build_model(LAYOUT, cfg.model), LAYOUT.buckets, 0)
    assert [type(h).__name__ for h in hooks] == ["VariantsHook"]
    plain = cfg.model_copy(update={"model": ModelConfig(name="lr")})
    assert build_hooks(plain, build_model(LAYOUT, plain.model), LAYOUT.buckets, 0) == []
