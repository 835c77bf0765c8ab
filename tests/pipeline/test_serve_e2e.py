"""``flinkdl serve`` end to end: a real PS with a committed model, the local broker, the mini-cluster.

Unlabelled requests and one corrupt message are scored once each (the corrupt one is a dead
letter), with the PS's version 1 and a model age from its annotated event time; after a new commit
the running job (its background poller) scores later requests with version 2. Scores equal those
of the committed version loaded from its checkpoint files.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from confluent_kafka import Producer

from flinkdl.config.loader import load_config
from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import generator_batches, produce, read_topic
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.transform import Featurizer
from flinkdl.models.registry import build_model
from flinkdl.ps.export import load_version
from flinkdl.telemetry import names
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import ROOT, PsProcess
from tests.telemetry.test_exporter import sample, scrape

pytestmark = pytest.mark.e2e
N, M = 400, 100  #: requests before and after the second commit
SETS = ["model.name=lr", "features.hash_bits=16", "serving.refresh_s=0.5", "serving.starting_offsets=earliest",
        "source.kafka.topic=requests", "source.kafka.dead_letter_topic=requests-dead", "sinks.kafka.topic=scores",
        "source.kafka.batch_ms=100", "metrics.enabled=true", "metrics.port=0"]


def _requests(first: int, n: int) -> pa.RecordBatch:
    """The built-in stream's events ``first .. first+n-1`` with no label."""
    *_, last = generator_batches(first + n, batch_size=n)
    at = last.schema.get_field_index("label")
    return last.set_column(at, "label", pa.nulls(n, last.schema.field("label").type))


def _train_and_commit(sync: PsSync, model, cfg, seed_batch: int) -> int:
    """Two training steps on labelled events, then push + commit; the new version."""
    feat, layout = Featurizer(cfg.features), FeatureLayout.from_config(cfg.features)
    for batch in list(generator_batches(4096 * (seed_batch + 2), batch_size=4096))[seed_batch:]:
        cols = feat.transform(batch)[0].to_pydict()
        ids = np.stack([cols[f"id_{k}"] for k in range(layout.n_ids)], 1).astype(np.int64)
        dense = np.stack([cols[f"x_{k}"] for k in range(layout.n_dense)], 1).astype(np.float32)
        sync.before_step(ids)
        model.predict_then_train(tf.constant(ids), tf.constant(dense), tf.constant(np.asarray(cols["label"],
                                                                                                np.float32)))
    sync.sync()
    return int(sync.client.commit()["version"])


def _expected(cfg, ckpt: str, version: int, batch: pa.RecordBatch) -> dict[int, float]:
    model, _ = load_version(cfg, ckpt, version)
    layout = FeatureLayout.from_config(cfg.features)
    cols = Featurizer(cfg.features).transform(batch)[0].to_pydict()
    ids = np.stack([cols[f"id_{k}"] for k in range(layout.n_ids)], 1).astype(np.int64)
    dense = np.stack([cols[f"x_{k}"] for k in range(layout.n_dense)], 1).astype(np.float32)
    scores = model.predict(tf.constant(ids), tf.constant(dense)).numpy()
    return dict(zip(cols["event_id"], scores.tolist(), strict=True))


def test_serve_scores_requests_and_follows_new_versions(kafka_broker, tmp_path):
    b = kafka_broker.bootstrap
    create_topics(b, ["requests", "requests-dead", "scores"])
    server = PsProcess(tmp_path / "ck")
    sets = [*SETS, f"source.kafka.bootstrap_servers={b}", f"ps.address={server.address}",
            f"job.run_dir={tmp_path / 'run'}"]
    cfg = load_config(ROOT / "jobs/click_stream_kafka.yaml", sets)
    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    sync = PsSync(model, cfg.ps, cfg.features.buckets, single_writer=True)
    proc = None
    try:
        assert _train_and_commit(sync, model, cfg, 0) == 1
        trained_ts = int(time.time() * 1000) - 60_000  # as a trainer would: newest event it learnt
        sync.client.annotate(1, trained_ts)
        first = _requests(0, N)
        produce(b, "requests", iter([first.slice(0, N // 2)]), "csv", progress=False)
        produce_raw = Producer({"bootstrap.servers": b})
        produce_raw.produce("requests", b"not,a,request")
        assert produce_raw.flush(30) == 0
        produce(b, "requests", iter([first.slice(N // 2)]), "csv", progress=False)
        args = [sys.executable, "-m", "flinkdl.cli", "serve", "jobs/click_stream_kafka.yaml"]
        for s in sets:
            args += ["--set", s]
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        preds = read_topic(b, "scores", expect=N, idle_s=180, max_s=300)
        dead = read_topic(b, "requests-dead", expect=1, idle_s=10)
        values = [json.loads(m.value()) for m in preds]
        assert sorted(v["event_id"] for v in values) == list(range(N))  # every request scored once
        assert [m.value() for m in dead] == [b"not,a,request"]
        assert dict(dead[0].headers())["reason"] == b"field_count"
        assert {v["model_version"] for v in values} == {1} and all(v["label"] is None for v in values)
        assert all(v["ps_version_ts"] > 0 for v in values)
        assert all(0 <= (v["processing_ts"] - trained_ts) - v["model_age_ms"] < 5_000 for v in values)
        want = _expected(cfg, str(tmp_path / "ck"), 1, first)
        assert max(abs(v["score"] - want[v["event_id"]]) for v in values) <= 1e-6

        assert _train_and_commit(sync, model, cfg, 2) == 2
        committed = time.time()
        target = tmp_path / "run" / "prometheus" / "serving-0.json"
        deadline = time.monotonic() + cfg.serving.refresh_s + 10
        while sample(scrape(target), names.SERVING_MODEL_VERSION) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # no request comes meanwhile: the background poller loads v2 by itself
        loaded_s = time.time() - committed
        assert sample(scrape(target), names.SERVING_MODEL_VERSION) == 2, loaded_s
        print(f"serving: v2 loaded without a request, {loaded_s:.2f} s after the commit returned")
        second = _requests(N, M)
        produce(b, "requests", iter([second]), "csv", progress=False)
        later = [json.loads(m.value()) for m in read_topic(b, "scores", expect=N + M, idle_s=60)[N:]]
        assert sorted(v["event_id"] for v in later) == list(range(N, N + M))
        assert {v["model_version"] for v in later} == {2}
        assert all(abs(v["ps_version_ts"] / 1000 - committed) < 5 for v in later)
        assert all(v["model_age_ms"] >= 60_000 for v in later)  # v2 inherits v1's trained event time
        want = _expected(cfg, str(tmp_path / "ck"), 2, second)
        assert max(abs(v["score"] - want[v["event_id"]]) for v in later) <= 1e-6
        text = scrape(tmp_path / "run" / "prometheus" / "serving-0.json")
        assert sample(text, names.SERVING_MODEL_VERSION) == 2
        assert sample(text, names.SERVING_REFRESH_LAG_SECONDS + "_count") == 2
        assert sample(text, names.SERVING_EVENTS + "_total") == N + M
        assert sample(text, names.MODEL_AGE_SECONDS + "_count") >= 2  # one per scored batch
        assert sample(text, names.SCORING_LATENCY_SECONDS + "_count") >= 2
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=120)
            print(out[-4000:])
        sync.client.close()
        server.stop()
