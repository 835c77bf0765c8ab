"""The supervisor with a real TF worker process over real unix sockets (tensorflow-io reader)."""

import json
import os
import signal
import urllib.request

import numpy as np
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flinkdl.config.loader import load_config
from flinkdl.exchange.channel import pack
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.worker.supervisor import WorkerFailed, WorkerSupervisor

ROWS = 512


def _config(tmp_path, *extra):
    return load_config(None, [f"job.run_dir={tmp_path}", "model.name=lr", "features.hash_bits=12",
                              "worker.intra_op_threads=1", *extra])


def _batches(cfg, n):
    layout = FeatureLayout.from_config(cfg.features)
    rng = np.random.default_rng(0)
    for i in range(n):
        ids = rng.integers(0, layout.buckets, (layout.n_ids, ROWS))
        label = (ids[0] % 2).astype(np.float32)  # learnable from the first field
        cols = [np.arange(i * ROWS, (i + 1) * ROWS, dtype=np.int64), label, *ids]
        cols += [rng.random(ROWS, dtype=np.float32) for _ in range(layout.n_dense)]
        yield pack(pa.record_batch(cols, schema=layout.schema()))


def test_prequential_stream_survives_kill_9_without_loss_or_duplicates(tmp_path):
    cfg = _config(tmp_path)
    sup = WorkerSupervisor(cfg)
    sup.start()
    seen, versions = [], []
    try:
        for i, payload in enumerate(_batches(cfg, 12)):
            if i == 6:
                os.kill(sup.pid, signal.SIGKILL)
            out, committed = sup.process(payload, ROWS)
            assert committed is None  # no parameter server
            seen.append(out.column("event_id").to_numpy())
            versions.append(out.column("model_version")[0].as_py())
    finally:
        sup.stop()
    ids = np.concatenate(seen)
    assert np.array_equal(ids, np.arange(12 * ROWS)), "every event answered once, in order"
    assert sup.restarts == 1
    # a batch is scored before training on it: versions count steps; the restart began a new model
    assert versions[:6] == [1, 2, 3, 4, 5, 6] and versions[6] == 1
    assert sup.pid is None


def test_worker_that_cannot_start_fails_with_its_log(tmp_path):
    cfg = _config(tmp_path, "model.name=no.such.module:Model", "worker.start_timeout_s=60")
    sup = WorkerSupervisor(cfg)
    with pytest.raises(WorkerFailed, match=r"worker-0\.log"):
        sup.start()
    assert "no.such" in (tmp_path / "worker-0.log").read_text()
    sup.stop()


def test_a_hung_worker_is_replaced_after_the_step_timeout(tmp_path):
    cfg = _config(tmp_path, "worker.step_timeout_s=3")
    sup = WorkerSupervisor(cfg)
    sup.start()
    seen = []
    try:
        for i, payload in enumerate(_batches(cfg, 4)):
            if i == 2:
                os.kill(sup.pid, signal.SIGSTOP)  # alive but answering nothing
            out, _ = sup.process(payload, ROWS)
            seen.append(out.column("event_id").to_numpy())
    finally:
        sup.stop()
    assert sup.restarts == 1
    assert np.array_equal(np.concatenate(seen), np.arange(4 * ROWS))


def test_a_worker_with_ps_and_metrics_hooks_marks_committing_batches_and_exports(tmp_path):
    """The real worker process with both hooks: PS versions in the right batches' metadata,
    its /metrics endpoint counts steps and syncs, and the final push writes its report."""
    from tests.ps.conftest import PsProcess

    server = PsProcess(tmp_path / "ck")
    try:
        cfg = _config(tmp_path, "ps.enabled=true", f"ps.address={server.address}", "ps.push_every_batches=2",
                      "ps.push_every_s=600", "ps.commit_every_pushes=1", "metrics.enabled=true")
        sup = WorkerSupervisor(cfg)
        sup.start()
        try:
            committed = [sup.process(payload, ROWS)[1] for payload in _batches(cfg, 4)]
            target = json.loads((tmp_path / "prometheus" / "worker-0.json").read_text())[0]["targets"][0]
            text = urllib.request.urlopen(f"http://{target}/metrics", timeout=10).read().decode()
        finally:
            sup.stop()
        assert committed[0] is None and committed[2] is None
        assert committed[1] is not None and committed[3] is not None and committed[3] > committed[1]
        samples = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert samples["flinkdl_worker_events_total"] == 4 * ROWS
        assert samples["flinkdl_worker_model_version"] == 4
        assert samples["flinkdl_ps_syncs_total"] == 2 and samples["flinkdl_ps_lag_batches"] == 0
        reports = list(tmp_path.glob("ps-final-*.json"))
        assert len(reports) == 1 and json.loads(reports[0].read_text())["batches"] == 4
    finally:
        server.stop()
