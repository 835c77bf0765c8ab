"""A real standalone Flink cluster (pyflink's distribution): start, submit, RUNNING via REST,
stop with a savepoint, resume from it, stop. One module, one cluster: each step costs seconds."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import psutil
import pytest
import yaml

from flinkdl.cluster.rest import FlinkRestError
from flinkdl.devtools.net import free_port
from flinkdl.sinks.predictions import read_predictions
from tests import faults
from tests.deploy.promql import PROMETHEUS, panel_queries
from tests.ps.conftest import PsProcess

pytestmark = pytest.mark.e2e


def _last_metrics(run_dir) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def test_submit_stop_with_savepoint_and_resume(cluster, tmp_path):
    overrides = ["source.generator.events=null", f"job.run_dir={tmp_path}/run",
                 f"sinks.predictions.path={tmp_path}/run/predictions.csv",
                 "model.name=lr", "model.dense_optimizer=null", "job.report_every_s=0.5", "job.bundle_size=10"]
    config = faults.ROOT / "jobs" / "click_stream.yaml"
    job = cluster.submit(config, overrides)
    assert cluster.rest.wait_for_state(job, {"RUNNING"}) == "RUNNING"
    listed = {j.id: j for j in cluster.rest.jobs()}
    assert listed[job].state == "RUNNING" and listed[job].name == "click-stream"
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "metrics.jsonl").exists():
        time.sleep(0.5)
    time.sleep(3)
    savepoint = cluster.rest.stop_with_savepoint(job, str(tmp_path / "savepoints"))
    assert cluster.rest.wait_for_state(job, {"FINISHED", "CANCELED"}) == "FINISHED"
    first = _last_metrics(tmp_path / "run")
    assert first["events_in"] > 0

    overrides[1:3] = [f"job.run_dir={tmp_path}/run2", f"sinks.predictions.path={tmp_path}/run2/predictions.csv"]
    resumed = cluster.submit(config, overrides, savepoint=savepoint)
    assert cluster.rest.wait_for_state(resumed, {"RUNNING"}) == "RUNNING"
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run2" / "metrics.jsonl").exists():
        time.sleep(0.5)
    cluster.rest.stop_with_savepoint(resumed, str(tmp_path / "savepoints"))
    assert cluster.rest.wait_for_state(resumed, {"FINISHED", "CANCELED"}) == "FINISHED"
    ids = [read_predictions(tmp_path / r / "predictions.csv").column("event_id").to_numpy() for r in ("run", "run2")]
    # Every event before the savepoint was predicted by the first run; the resumed job took the
    # generator's position from the savepoint and went on from the next event: no gap, no replay.
    assert np.array_equal(ids[0], np.arange(len(ids[0]))) and len(ids[0]) >= first["events_in"]
    assert len(ids[1]) > 0 and np.array_equal(ids[1], np.arange(len(ids[0]), len(ids[0]) + len(ids[1])))


def test_serve_submits_the_serving_job_to_the_cluster(cluster, kafka_broker, tmp_path):
    """``flinkdl serve --rest``: the scoring-only job runs on the cluster with the PS's model."""
    from flinkdl.config.loader import load_config
    from flinkdl.devtools.broker import create_topics
    from flinkdl.devtools.produce import produce, read_topic
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models.registry import build_model
    from flinkdl.worker.ps_sync import PsSync
    from tests.pipeline.test_serve_e2e import SETS, _requests, _train_and_commit

    b, n = kafka_broker.bootstrap, 200
    # topics of its own: the session's broker is shared with the other Kafka tests
    requests, dead, scores = "cluster-requests", "cluster-requests-dead", "cluster-scores"
    create_topics(b, [requests, dead, scores])
    server = PsProcess(tmp_path / "ck")
    sets = [*SETS, f"source.kafka.bootstrap_servers={b}", f"ps.address={server.address}",
            f"job.run_dir={tmp_path / 'run'}", "metrics.enabled=false", f"source.kafka.topic={requests}",
            f"source.kafka.dead_letter_topic={dead}", f"sinks.kafka.topic={scores}"]
    config = faults.ROOT / "jobs" / "click_stream_kafka.yaml"
    cfg = load_config(config, sets)
    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    sync = PsSync(model, cfg.ps, cfg.features.buckets, single_writer=True)
    job = None
    try:
        assert _train_and_commit(sync, model, cfg, 0) == 1
        sync.client.annotate(1, int(time.time() * 1000))
        produce(b, requests, iter([_requests(0, n)]), "csv", progress=False)
        args = [sys.executable, "-m", "flinkdl.cli", "serve", str(config), "--rest", cluster.rest.url,
                "--cluster-dir", str(cluster.root)]
        for kv in sets:
            args += ["--set", kv]
        out = subprocess.run(args, cwd=faults.ROOT, capture_output=True, text=True, timeout=180, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        job = out.stdout.strip().splitlines()[-1]
        assert cluster.rest.wait_for_state(job, {"RUNNING"}) == "RUNNING"
        assert {j.id: j.name for j in cluster.rest.jobs()}[job].endswith("-serving")
        values = [json.loads(m.value()) for m in read_topic(b, scores, expect=n, idle_s=120, max_s=240)]
        assert sorted(v["event_id"] for v in values) == list(range(n))
        assert {v["model_version"] for v in values} == {1} and all(v["model_age_ms"] >= 0 for v in values)
    finally:
        if job is not None:
            cluster.rest.stop_with_savepoint(job, str(tmp_path / "savepoints"))
        sync.client.close()
        server.stop()


def _exactly_once_run(cluster, base, name: str, kill_taskmanager: bool) -> dict:
    run_dir, ps = base / name, PsProcess(base / f"{name}-ps-versions")
    try:
        job = cluster.submit(faults.ROOT / "jobs" / "click_stream.yaml", faults.overrides(run_dir, ps.address))
        if kill_taskmanager:
            faults.wait_predictions(run_dir)
            faults.assert_mid_stream(run_dir)
            (tm,) = cluster.taskmanager_pids()
            os.kill(tm, signal.SIGKILL)
            cluster.add_taskmanager()  # what Kubernetes or a supervisor does for a lost pod
        assert cluster.rest.wait_for_state(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=400) == "FINISHED"
        out = faults.outcome(run_dir, ps.address, _last_metrics(run_dir))
    finally:
        ps.stop()
    return {**out, "restarts": cluster.rest.job(job).get("status-counts"), "killed": kill_taskmanager and tm}


def test_taskmanager_killed_with_sigkill_recovers_exactly_once(cluster, tmp_path):
    """kill -9 of the TaskManager mid-stream (its Python harness and TF worker go with it); a new
    TaskManager joins; Flink restores the last checkpoint and the job ends as an uncrashed one."""
    clean = _exactly_once_run(cluster, tmp_path, "clean", kill_taskmanager=False)
    run = _exactly_once_run(cluster, tmp_path, "tm-killed", kill_taskmanager=True)
    assert run["summary"]["final"] and not psutil.pid_exists(run["killed"])
    faults.compare(run, clean, "taskmanager")
    # The dead TaskManager's harness and its TF worker exit too (flinkdl/pipeline/taskmanager_watch.py).
    mark = f'"run_dir":"{tmp_path / "tm-killed"}"'
    deadline = time.time() + 15
    while (left := [p.pid for p in psutil.process_iter(["cmdline"]) if mark in " ".join(p.info["cmdline"] or ())]) \
            and time.time() < deadline:
        time.sleep(0.5)
    assert not left, f"processes of the killed TaskManager still run: {left}"


def test_rest_errors_are_clear(cluster):
    with pytest.raises(FlinkRestError, match="HTTP 404"):
        cluster.rest.job("0" * 32)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install -y prometheus")
def test_flink_dashboard_panels_get_data_from_the_cluster_reporter(cluster, tmp_path):
    """The two Flink panels of the Grafana dashboard, fed by Flink's own Prometheus reporter
    (flinkdl/cluster/flink-config.yaml: JobManager and TaskManager on 9249-9259) and scraped by a real
    Prometheus while a checkpointing job runs on the cluster."""
    job = cluster.submit(faults.ROOT / "jobs" / "click_stream.yaml",
                         ["source.generator.events=null", f"job.run_dir={tmp_path}/run", "sinks.predictions=null",
                          "model.name=lr", "model.dense_optimizer=null", "job.checkpoint_interval_s=1",
                          "job.bundle_size=10"])
    cluster.rest.wait_for_state(job, {"RUNNING"})
    port = free_port()
    conf = {"global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "flink", "static_configs": [
                {"targets": [f"127.0.0.1:{p}" for p in range(9249, 9253)]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(conf))
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pending = {t: f"({e}) == ({e})" for t, e in panel_queries() if t.startswith("Flink")}
        assert len(pending) == 2
        deadline = time.time() + 180
        while pending and time.time() < deadline:
            pending = {t: e for t, e in pending.items() if not _query(port, e)}
            time.sleep(1)
        assert not pending, f"Flink panels without data: {pending}"
    finally:
        prom.terminate()
        prom.wait(30)
        cluster.rest.stop_with_savepoint(job, str(tmp_path / "savepoints"))


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)["data"]["result"]
    except OSError:  # Prometheus still starting
        return []
