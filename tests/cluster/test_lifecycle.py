"""A real standalone Flink cluster (pyflink's distribution): start, submit, RUNNING via REST,
stop with a savepoint, resume from it, stop. One module, one cluster: each step costs seconds."""

import json
import socket
import time

import numpy as np
import pytest

from flinkdl.cluster.rest import FlinkRestError
from flinkdl.cluster.standalone import PROJECT_ROOT, LocalCluster
from flinkdl.sinks.predictions import read_predictions

pytestmark = pytest.mark.e2e


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not _port_free(8081):
        pytest.skip("port 8081 is taken: another Flink cluster is running")
    c = LocalCluster(tmp_path_factory.mktemp("cluster"))
    c.start()
    yield c
    c.stop()


def _last_metrics(run_dir) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def test_submit_stop_with_savepoint_and_resume(cluster, tmp_path):
    overrides = ["source.generator.events=null", f"job.run_dir={tmp_path}/run",
                 f"sinks.predictions.path={tmp_path}/run/predictions.csv",
                 "model.name=lr", "model.dense_optimizer=null", "job.report_every_s=0.5", "job.bundle_size=10"]
    config = PROJECT_ROOT / "jobs" / "click_stream.yaml"
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


def test_rest_errors_are_clear(cluster):
    with pytest.raises(FlinkRestError, match="HTTP 404"):
        cluster.rest.job("0" * 32)
