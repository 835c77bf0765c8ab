"""An ensemble on the parameter server: each variant under its own table prefix, saved, restored, exported."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from flinkdl.config.ensemble import EnsembleConfig, VariantConfig
from flinkdl.config.schema import JobConfig, ModelConfig, OptimizerConfig, PsConfig
from flinkdl.models.registry import build_model
from flinkdl.ps.client import PsClient
from flinkdl.ps.export import export_saved_model
from flinkdl.worker.ps_sync import PsSync
from tests.models.test_models import LAYOUT, interaction_stream
from tests.ps.conftest import PsProcess


def _model_cfg() -> ModelConfig:
    variants = [VariantConfig(id="slow", lr_scale=0.1), VariantConfig(id="lr", model={"name": "lr"}),
                VariantConfig(id="fm")]
    return ModelConfig(name="ensemble", embedding_dim=4, ensemble=EnsembleConfig(base="fm", variants=variants),
                       optimizer=OptimizerConfig(learning_rate=0.1),
                       dense_optimizer=OptimizerConfig(name="adam", learning_rate=0.01))


def _ensemble():
    return build_model(LAYOUT, _model_cfg())


def test_ensemble_variants_are_saved_under_their_prefixes_and_a_restored_one_continues_exactly(tmp_path):
    ids, dense, y = interaction_stream(3000, seed=5)
    server = PsProcess(tmp_path / "ck")
    try:
        ps = PsConfig(enabled=True, address=server.address, push_every_batches=2, single_writer=True)
        a = _ensemble()
        sync = PsSync(a, ps, LAYOUT.buckets, single_writer=True)
        for s in range(0, 2000, 200):
            sync.before_step(ids[s:s + 200])
            a.predict_then_train(tf.constant(ids[s:s + 200]), tf.constant(dense[s:s + 200]),
                                 tf.constant(y[s:s + 200]))
            sync.after_step()
        assert sync.close()["version"] >= 1
        server.restart()  # the server restores its last committed version from the checkpoint dir
        with PsClient(server.address) as c:
            assert set(c.list_tables()) == {"slow.lr_w", "slow.emb", "lr.lr_w", "fm.lr_w", "fm.emb"}
            dense_names = set(c.dense_get())
        assert {"ensemble.loss", "ensemble.events", "slow.emb_dense", "lr.bias"} <= dense_names
        b = _ensemble()
        PsSync(b, ps, LAYOUT.buckets, single_writer=True).client.close()
        np.testing.assert_array_equal(b.loss.numpy(), a.loss.numpy())  # the selection state too
        np.testing.assert_array_equal(b.weights(), a.weights())
        # the SavedModel export of the committed version serves the same mixture
        job = JobConfig.model_validate({"model": _model_cfg().model_dump(), "features": {
            "categorical": [{"name": f"c{k}", "type": "int"} for k in range(4)], "numeric": ["x"],
            "hash_bits": 12}})
        out = export_saved_model(job, str(tmp_path / "ck"), None, tmp_path / "saved")
        fn = tf.saved_model.load(out).signatures["score_features"]
        got = fn(ids=tf.constant(ids[:64]), dense=tf.constant(dense[:64]))["score"].numpy()
        np.testing.assert_allclose(got, b.predict(ids[:64], dense[:64]).numpy(), atol=1e-6)
        # a restored ensemble continues exactly where the saved one was: same scores, same steps
        for s in range(2000, 3000, 250):
            sa = a.predict_then_train(ids[s:s + 250], dense[s:s + 250], y[s:s + 250]).numpy()
            sb = b.predict_then_train(ids[s:s + 250], dense[s:s + 250], y[s:s + 250]).numpy()
            np.testing.assert_array_equal(sa, sb)
    finally:
        server.stop()
