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


def test_manifest_records_trained_event_time_from_the_ps(tmp_path):
    """The manifest takes the PS version's ``trained_event_ts``; the published refresher gives it to serving."""
    from flinkdl.devtools.net import free_port
    from flinkdl.ps.client import PsClient
    from flinkdl.ps.server import build_server
    from flinkdl.publish.publisher import Snapshot
    from flinkdl.publish.warm_start import import_model

    server = build_server(port=0, checkpoint_dir=str(tmp_path / "ck"))
    try:
        cfg = small_config("lr", dir=str(tmp_path / "pub"))
        cfg.ps.enabled, cfg.ps.address = True, f"grpc://127.0.0.1:{server.port}"
        model = model_of(cfg)
        t = featurized(cfg, raw_batches(1)[0])
        model.predict_then_train(t.ids, t.dense, t.label)
        export = Publisher(cfg.publish.model_copy(update={"dir": tmp_path / "offline"}), cfg.features,
                           cfg.model).write(snapshot(model, 1, {}))
        assert "trained_event_ts" not in layout.manifest(tmp_path / "offline", 1)  # no PS: no event time
        assert import_model(export, cfg.features, cfg.model, cfg.ps)["version"] == 1
        publisher = Publisher(cfg.publish, cfg.features, cfg.model, cfg.ps)
        publisher.write(snapshot(model, 1, {}))  # a version the trainer has not annotated (yet)
        assert "trained_event_ts" not in layout.manifest(cfg.publish.dir, 1)
        with PsClient.from_config(cfg.ps) as client:
            client.annotate(1, 1_700_000_123_456)
        publisher.write(snapshot(model, 3, {}))  # a version the PS lacks
        assert "trained_event_ts" not in layout.manifest(cfg.publish.dir, 3)
        served = tmp_path / "served"
        Publisher(cfg.publish.model_copy(update={"dir": served}), cfg.features, cfg.model, cfg.ps).write(
            Snapshot(1, None, {}))  # read from the PS, as a worker that is not the only writer
        assert layout.manifest(served, 1)["trained_event_ts"] == 1_700_000_123_456
        loaded = PublishedRefresher(served, refresh_s=60).refresh()
        assert loaded.version == 1 and loaded.trained_event_ts == 1_700_000_123_456
        down = cfg.ps.model_copy(update={"address": f"grpc://127.0.0.1:{free_port()}", "connect_timeout_s": 0.2})
        Publisher(cfg.publish, cfg.features, cfg.model, down).write(snapshot(model, 5, {}))
        assert "trained_event_ts" not in layout.manifest(cfg.publish.dir, 5)  # PS down: published without it
    finally:
        server.shutdown()
