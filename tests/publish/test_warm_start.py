"""Warm start: an offline model imported into the PS is what a worker starts from; it beats a cold start."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.ps.errors import PsError
from flinkdl.ps.server import build_server
from flinkdl.publish.publisher import Publisher, Snapshot, snapshot
from flinkdl.publish.warm_start import import_model
from flinkdl.worker.hooks.ps import PsHook
from flinkdl.worker.process import run_step
from tests.publish.helpers import click_config, featurized, model_of, raw_batches

OFFLINE = 20  # batches of 2048 events learnt offline


def _first_window(model, hooks, cfg, batches) -> tuple[float, np.ndarray]:
    """Prequential AUC over ``batches`` and the first batch's scores."""
    labels, scores = [], []
    for raw in batches:
        b = featurized(cfg, raw)
        labels.append(b.label.numpy())
        scores.append(run_step(model, hooks, b).scores.numpy())
    return auc_from_arrays(np.concatenate(labels), np.concatenate(scores)), scores[0]


def test_imported_model_warm_starts_a_worker(tmp_path):
    server = build_server(port=0, checkpoint_dir=str(tmp_path / "ck"))
    try:
        cfg = click_config("lr", dir=str(tmp_path / "pub"))  # lr learns this stream fastest
        cfg.ps.enabled, cfg.ps.address = True, f"grpc://127.0.0.1:{server.port}"
        stream = raw_batches(OFFLINE + 2, size=2048, strings=False)
        offline = model_of(cfg)
        for raw in stream[:OFFLINE]:  # "offline" training
            b = featurized(cfg, raw)
            offline.predict_then_train(b.ids, b.dense, b.label)
        export = Publisher(cfg.publish, cfg.features, cfg.model).write(snapshot(offline, 1, {}))
        out = import_model(export, cfg.features, cfg.model, cfg.ps)
        assert out["version"] == 1 and out["rows"] > 100
        with pytest.raises(PsError, match="already has committed versions"):
            import_model(export, cfg.features, cfg.model, cfg.ps)

        warm = model_of(cfg)
        hook = PsHook.from_config(cfg.ps, warm, warm.layout.buckets, exactly_once=False, parallelism=1)
        first = featurized(cfg, stream[OFFLINE])
        expected = offline.predict(first.ids, first.dense).numpy()
        warm_auc, warm_first = _first_window(warm, [hook], cfg, stream[OFFLINE:])
        hook.close()
        np.testing.assert_allclose(warm_first, expected, atol=1e-6)  # the worker starts from the import
        cold_auc, _ = _first_window(model_of(cfg), [], cfg, stream[OFFLINE:])
        print(f"first-window AUC: warm {warm_auc:.4f}, cold {cold_auc:.4f}")
        assert warm_auc > cold_auc + 0.02, (warm_auc, cold_auc)

        # a publisher that is not the PS's only writer exports a version as committed on the server
        pub = Publisher(cfg.publish.model_copy(update={"dir": tmp_path / "pub2"}), cfg.features, cfg.model, cfg.ps)
        path = pub.write(Snapshot(1, None, {}))
        score = tf.saved_model.load(str(path)).signatures["score_features"]
        np.testing.assert_allclose(score(ids=first.ids, dense=first.dense)["score"].numpy(), expected, atol=1e-6)
    finally:
        server.shutdown()
