"""``serving.source: published``: the serving job's model follows the served (highest) version, rollbacks too."""

from __future__ import annotations

import numpy as np

from flinkdl.publish import layout
from flinkdl.publish.publisher import Publisher, snapshot
from flinkdl.publish.serving import PublishedRefresher
from tests.publish.helpers import featurized, model_of, raw_batches, small_config


def test_refresher_follows_published_versions_and_rollbacks(tmp_path):
    cfg = small_config(dir=str(tmp_path / "pub"))
    model = model_of(cfg)
    publisher = Publisher(cfg.publish, cfg.features, cfg.model)
    raws = raw_batches(3)
    b = featurized(cfg, raws[2])
    expected = {}
    for v, raw in ((4, raws[0]), (8, raws[1])):
        t = featurized(cfg, raw)
        model.predict_then_train(t.ids, t.dense, t.label)
        publisher.write(snapshot(model, v, {}))
        expected[v] = model.predict(b.ids, b.dense).numpy()
    r = PublishedRefresher(cfg.publish.dir, refresh_s=60)
    assert r.refresh().version == 8 and r.maybe_refresh() is None
    np.testing.assert_allclose(r.model.predict(b.ids.numpy(), b.dense.numpy()).numpy(), expected[8], atol=1e-6)
    layout.rollback(cfg.publish.dir, 4)
    assert r.refresh().version == 4
    np.testing.assert_allclose(r.model.predict(b.ids, b.dense).numpy(), expected[4], atol=1e-6)
    assert r.refresh() is None
