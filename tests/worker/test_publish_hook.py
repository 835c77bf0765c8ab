"""The publish hook: gated versions land in TF Serving's layout; refusals are recorded; a rollback holds it."""

from __future__ import annotations

import json

from flinkdl.publish import layout
from flinkdl.worker.hooks.publish import PublishHook
from flinkdl.worker.process import run_step
from tests.publish.helpers import featurized, model_of, raw_batches, small_config


def _run(hook: PublishHook, cfg, model, batches) -> None:
    for raw in batches:
        run_step(model, [hook], featurized(cfg, raw))
        hook.flush()


def test_publishes_gated_versions_and_honours_a_rollback(tmp_path):
    base = tmp_path / "pub"
    gate = {"window_events": 2048, "min_events": 1000, "min_auc": 0.45, "max_auc_drop": None,
            "min_calibration": 0.2, "max_calibration": 5.0}
    cfg = small_config(dir=str(base), every_versions=2, gate=gate, keep=3)
    model = model_of(cfg)
    hook = PublishHook.from_config(cfg.publish, cfg.features, model, ps=None)
    batches = raw_batches(16)
    _run(hook, cfg, model, batches[:12])
    published = layout.versions(base)
    refused = layout.refusals(base)
    assert published and len(published) <= 3 and all(v % 2 == 0 for v in published)
    assert published + [r["version"] for r in refused] == sorted(published + [r["version"] for r in refused])
    m = layout.manifest(base, published[-1])
    assert m["model_version"] == published[-1] and m["ps_version"] is None and m["formats"] == ["saved_model"]
    assert m["metrics"]["auc"] >= 0.45 and m["event_ids"][0] == 0 and m["metrics"]["events"] == 2048
    assert (base / str(published[-1]) / "saved_model.pb").is_file()

    # a threshold no version meets: counted, recorded with its numbers, nothing new on disk
    hook.gate.cfg = hook.gate.cfg.model_copy(update={"min_auc": 0.999})
    before = layout.versions(base)
    _run(hook, cfg, model, batches[12:14])
    assert layout.versions(base) == before
    last = layout.refusals(base)[-1]
    assert last["version"] == 14 and any("min_auc 0.999" in r for r in last["reasons"])
    assert last["metrics"]["auc"] < 0.999 and hook.refused >= 1

    # rollback: newer versions move aside, HOLD stops publishing until resumed
    hook.gate.cfg = hook.gate.cfg.model_copy(update={"min_auc": 0.0})
    target = before[0]
    moved = layout.rollback(base, target)
    assert layout.latest(base) == target and moved == before[1:]
    assert sorted(int(p.name) for p in (base / layout.ROLLED_BACK).iterdir()) == moved
    _run(hook, cfg, model, batches[14:16])
    assert layout.latest(base) == target
    assert layout.resume(base) and layout.held(base) is None
    hook.close()
    json.dumps(layout.manifest(base, target))  # manifests stay plain JSON


def test_a_version_worse_than_the_last_published_is_refused(tmp_path):
    """Labels flip (a broken upstream join, say): the window AUC falls under the last published one's."""
    base = tmp_path / "pub"
    cfg = small_config(dir=str(base), gate={"window_events": 1024, "min_events": 500, "min_auc": 0.0,
                                            "max_auc_drop": 0.02, "min_calibration": 0.1, "max_calibration": 10})
    model = model_of(cfg)
    hook = PublishHook.from_config(cfg.publish, cfg.features, model, ps=None)
    batches = raw_batches(12)
    _run(hook, cfg, model, batches[:8])
    good = layout.versions(base)
    for raw in batches[8:]:
        b = featurized(cfg, raw)
        b.label = 1.0 - b.label
        run_step(model, [hook], b)
        hook.flush()
    hook.close()
    assert good and layout.versions(base) == good
    last_auc = layout.manifest(base, good[-1])["metrics"]["auc"]
    refused = [d for d in layout.refusals(base) if d["version"] > 8]
    assert refused and all(d["metrics"]["auc"] < last_auc - 0.02 for d in refused)
    assert all(any("last published" in r for r in d["reasons"]) for d in refused)


def test_refusals_and_publishes_reach_prometheus(tmp_path):
    from flinkdl.telemetry.exporter import MetricsEndpoint

    gate = {"window_events": 512, "min_events": 500, "min_auc": 0.0, "max_auc_drop": None,
            "min_calibration": 0.01, "max_calibration": 100}
    cfg = small_config(dir=str(tmp_path / "pub"), gate=gate)
    endpoint = MetricsEndpoint(cfg, "worker", 0, 0)
    model = model_of(cfg)
    hook = PublishHook.from_config(cfg.publish, cfg.features, model, ps=None, endpoint=endpoint)
    _run(hook, cfg, model, raw_batches(2))
    hook.gate.cfg = hook.gate.cfg.model_copy(update={"min_auc": 0.99})
    _run(hook, cfg, model, raw_batches(1))
    hook.close()
    value = endpoint.registry.get_sample_value
    lb = {"job": cfg.job.name, "model": cfg.model.name, "subtask": "0"}
    assert value("flinkdl_publish_published_total", lb) == 2 and value("flinkdl_publish_refused_total", lb) == 1
    assert value("flinkdl_publish_version", lb) == 2 and value("flinkdl_publish_latency_seconds", lb) > 0
    assert 0 < value("flinkdl_publish_refused_auc", lb) < 0.99
