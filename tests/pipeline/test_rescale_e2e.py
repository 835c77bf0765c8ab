"""Rescaling an exactly-once job on a standalone cluster (two TaskManagers, two slots each): stop with a
savepoint at parallelism 2, resume at 4, stop again, resume at 1 and run to the end. Every event is
answered once and trained once over the three jobs (one run directory: the sink's anchor carries
over), and the model continues from the PS: trainers of another parallelism ignore the savepoint's
anchors and tails (``Train.stale``), whose deltas the stopped trainers pushed and committed when
they closed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flinkdl.cluster.standalone import LocalCluster
from flinkdl.devtools.net import free_port
from flinkdl.sinks.predictions import read_predictions
from tests import faults
from tests.ps.conftest import PsProcess

pytestmark = pytest.mark.e2e


def test_stop_at_2_resume_at_4_then_at_1(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", f"http://127.0.0.1:{free_port()}", slots=2, rpc_port=free_port())
    ps = PsProcess(tmp_path / "ps")
    run_dir = tmp_path / "run"
    config = faults.ROOT / "jobs" / "click_stream.yaml"
    # Paced at the source only, trainers unthrottled: a savepoint barrier is aligned (unlike the job's
    # checkpoints), so it waits for the batches buffered while the workers started; fast trainers
    # drain them in seconds and the stop lands mid-stream.
    base = [*faults.overrides(run_dir, ps.address), "source.generator.max_rate_per_s=512",
            "worker.max_rows_per_s=null"]
    try:
        cluster.start(taskmanagers=2)
        savepoint = None
        for p, until in ((2, faults.EVENTS // 4), (4, faults.EVENTS // 2)):
            job = cluster.submit(config, [*base, f"job.parallelism={p}"], savepoint=savepoint)
            faults.wait_predictions(run_dir, rows=until, timeout=300)
            faults.assert_mid_stream(run_dir)
            savepoint = cluster.rest.stop_with_savepoint(job, str(tmp_path / "savepoints"))
            assert cluster.rest.wait_for_state(job, {"FINISHED", "FAILED", "CANCELED"}) == "FINISHED"
            # a savepoint waits for the batches in flight (the backlog made while the workers started)
            done = faults.predicted_rows(run_dir)
            print(f"\np={p} stopped after {done} predictions")
        # PsCut (only at parallelism > 1) has state in the savepoint that the p=1 job has no operator for
        job = cluster.submit(config, [*base, "job.parallelism=1"], savepoint=savepoint, allow_non_restored=True)
        assert cluster.rest.wait_for_state(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=400) == "FINISHED"
        summary = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        ids = read_predictions(faults.prediction_files(run_dir)).column("event_id").to_numpy()
        uniq, counts = np.unique(ids, return_counts=True)
        print(f"\nrescale 2 → 4 → 1: auc {summary['auc']:.6f}, duplicates {int((counts - 1).sum())}, "
              f"missing {faults.EVENTS - len(uniq)}")
        # At p > 1 the aggregator of partial counts writes the summary, at p = 1 the single evaluator:
        # a resume at p = 1 starts its counts there (docs/EXACTLY_ONCE.md, "Rescaling").
        rest = faults.EVENTS - done if done < faults.EVENTS else faults.EVENTS
        assert summary["final"] and summary["events_in"] == summary["events_trained"] == rest
        assert np.array_equal(uniq, np.arange(faults.EVENTS)) and (counts == 1).all()
    finally:
        ps.stop()
        cluster.stop()
