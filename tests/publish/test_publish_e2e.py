"""End-to-end: a generator job with publishing on.

One run of ``jobs/click_stream.yaml`` (small tables, a PS commit after every batch) publishes
behind a gate whose ``min_auc`` the first versions (a fresh model, near chance) cannot meet.
Then: at least two versions in TF Serving's layout with both formats, the refused
ones recorded with their numbers, and raw events scored by the export (TensorFlow on the raw
columns, onnxruntime on the featurized ones) equal to the worker's own scores of those events.
Then ``flinkdl serve`` with ``serving.source: published`` (the local broker, the mini-cluster)
scores unlabelled requests with the highest published version, as its SavedModel scores the same
rows, and with the model age from that version's manifest (the PS's trained event time).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
import tensorflow as tf

from flinkdl.config.loader import load_config
from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.net import free_port
from flinkdl.devtools.produce import generator_batches, produce, read_topic
from flinkdl.publish import layout
from flinkdl.publish.publisher import ONNX_FILE
from flinkdl.sinks.predictions import read_predictions
from flinkdl.sources.generator import ClickStream
from tests.publish.helpers import featurized, raw_inputs

pytestmark = pytest.mark.e2e
BATCH, BATCHES = 4096, 16
MIN_AUC = 0.57
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_publish_gate_and_scores(kafka_broker, tmp_path):
    run_dir, pub, ck = tmp_path / "run", tmp_path / "published", tmp_path / "ps"
    sets = [f"job.run_dir={run_dir}", f"sinks.predictions.path={run_dir}/predictions.csv",
            "features.hash_bits=16", f"source.generator.batch_size={BATCH}",
            "ps.enabled=true", f"ps.address=grpc://127.0.0.1:{free_port()}", f"ps.checkpoint_dir={ck}",
            "ps.push_every_batches=1", "ps.commit_every_pushes=1",
            "publish.enabled=true", f"publish.dir={pub}", "publish.every_versions=1",
            "publish.formats=[saved_model, onnx]", "publish.gate.window_events=8192",
            "publish.gate.min_events=4096", f"publish.gate.min_auc={MIN_AUC}", "publish.gate.max_auc_drop=0.05",
            # the steps and accumulator before the issue-15 defaults: with them the first versions score
            # below MIN_AUC, so the gate has early versions to refuse (the new ones learn faster)
            "model.micro_batch_rows=512", "model.optimizer.initial_accumulator=0.1"]
    args = [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--max-events", str(BATCH * BATCHES)]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / "worker-0.log").read_text()
    assert "Traceback" not in log, log[-3000:]

    # TF Serving's layout, both formats, nothing half-written left
    versions = layout.versions(pub)
    assert len(versions) >= 2, (versions, log[-2000:])
    assert not [p for p in pub.iterdir() if p.name.startswith(".tmp")]
    for v in versions:
        d = pub / str(v)
        assert (d / "saved_model.pb").is_file() and (d / "variables").is_dir() and (d / ONNX_FILE).is_file()
        m = layout.manifest(pub, v)
        assert m["ps_version"] == v and m["metrics"]["auc"] >= MIN_AUC and m["formats"] == ["saved_model", "onnx"]
        assert m["trained_event_ts"] > 0  # the train operator's annotation of that PS version

    # the gate refused the early versions, with their numbers, in the log and refused.jsonl
    refused = layout.refusals(pub)
    assert refused and refused[0]["version"] < versions[0]
    assert any(d["metrics"]["auc"] < MIN_AUC and any("min_auc" in r for r in d["reasons"]) for d in refused)
    lines = [json.loads(x) for x in log.splitlines() if x.startswith('{"')]
    pubs = [x for x in lines if x.get("publish") == "published"]
    assert {x["version"] for x in pubs} >= set(versions) and any(x.get("publish") == "refused" for x in lines)
    lat = [x["latency_s"] for x in pubs]
    size = [x["bytes"] for x in pubs]
    print(f"\npublish latency (PS commit -> on disk) s: median {np.median(lat):.3f} max {max(lat):.3f}; "
          f"export bytes {int(np.median(size))}; published {len(pubs)}, refused {len(refused)}")

    # raw events scored by both runtimes equal the worker's scores: the worker scored the first
    # micro-batch of batch M (model_version M + 1 after the step) with the model at model version M,
    # the published one (each later micro-batch after a step of the batch)
    cfg = load_config(ROOT / "jobs/click_stream.yaml", sets)
    preds = read_predictions(run_dir / "predictions.csv")
    gen = ClickStream(seed=cfg.source.generator.seed, drift_at=cfg.source.generator.drift_at)
    checked = 0
    for v in versions[-2:]:
        m = layout.manifest(pub, v)["model_version"]
        if m >= BATCHES:
            continue  # the last version: no batch was scored with it
        raw = gen.batch(m, BATCH).slice(0, cfg.model.micro_batch_rows or BATCH)
        rows = preds.filter(np.asarray(preds.column("model_version").to_numpy() == m + 1))
        by_id = dict(zip(rows.column("event_id").to_pylist(), rows.column("score").to_pylist(), strict=True))
        worker = np.array([by_id[i] for i in raw.column("event_id").to_pylist()], np.float32)
        saved = tf.saved_model.load(str(pub / str(v)))
        tf_raw = saved.signatures["serving_default"](**{k: tf.constant(x) for k, x in raw_inputs(cfg, raw).items()})
        b = featurized(cfg, raw)
        sess = ort.InferenceSession(str(pub / str(v) / ONNX_FILE), providers=["CPUExecutionProvider"])
        onnx = sess.run(["score"], {"ids": b.ids.numpy(), "dense": b.dense.numpy()})[0]
        assert np.abs(tf_raw["score"].numpy() - worker).max() <= 1e-5
        assert np.abs(onnx - worker).max() <= 1e-5
        checked += 1
    assert checked >= 1

    _serve_published(kafka_broker.bootstrap, pub, versions[-1], tmp_path)


def _serve_published(bootstrap: str, pub, served: int, tmp_path) -> None:
    """``flinkdl serve`` on ``pub`` (``serving.source: published``): requests scored by version ``served``."""
    n = 300
    # topics of its own: the session's broker is shared with the other Kafka tests
    requests, dead, scores = "published-requests", "published-requests-dead", "published-scores"
    create_topics(bootstrap, [requests, dead, scores])
    *_, raw = generator_batches(n, batch_size=n)
    raw = raw.set_column(raw.schema.get_field_index("label"), "label", pa.nulls(n, raw.schema.field("label").type))
    produce(bootstrap, requests, iter([raw]), "csv", progress=False)
    sets = ["features.hash_bits=16", "serving.source=published", f"publish.dir={pub}", "serving.refresh_s=0.5",
            "serving.starting_offsets=earliest", f"source.kafka.bootstrap_servers={bootstrap}",
            f"source.kafka.topic={requests}", f"source.kafka.dead_letter_topic={dead}", "source.kafka.batch_ms=100",
            f"sinks.kafka.topic={scores}", f"job.run_dir={tmp_path / 'serve'}"]
    args = [sys.executable, "-m", "flinkdl.cli", "serve", "jobs/click_stream_kafka.yaml"]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        values = [json.loads(m.value()) for m in read_topic(bootstrap, scores, expect=n, idle_s=180, max_s=300)]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert sorted(v["event_id"] for v in values) == list(range(n)), out[-3000:]  # every request scored once
    assert {v["model_version"] for v in values} == {served}
    cfg = load_config(ROOT / "jobs/click_stream_kafka.yaml", sets)
    b = featurized(cfg, raw)
    saved = tf.saved_model.load(str(pub / str(served))).signatures["score_features"]
    want = dict(zip(b.event_id.numpy().tolist(), saved(ids=b.ids, dense=b.dense)["score"].numpy().tolist(),
                    strict=True))
    assert max(abs(v["score"] - want[v["event_id"]]) for v in values) <= 1e-6
    trained_ts = layout.manifest(pub, served)["trained_event_ts"]
    assert all(0 <= (v["processing_ts"] - trained_ts) - v["model_age_ms"] < 5_000 for v in values)
