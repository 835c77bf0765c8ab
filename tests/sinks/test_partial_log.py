"""Parallel subtasks' logs (PartialLog) merged by the aggregator (AggregateLog): the same run summary
as one RunLog over all batches, up to the binned AUC; a subtask cut back to an anchor re-counts."""

import json

import numpy as np
import pyarrow as pa

from flinkdl.config.loader import load_config
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.sinks.aggregate_log import AggregateLog
from flinkdl.sinks.partial_log import PartialLog
from flinkdl.sinks.predictions import read_predictions
from flinkdl.sinks.run_log import METRICS_LOG, RunLog

DEAD = b'{"reason": "not_numeric", "field": "I1"}\n'


def _preds(start, n, rng):
    return pa.record_batch([np.arange(start, start + n, dtype=np.int64), rng.random(n, dtype=np.float32),
                            rng.integers(0, 2, n).astype(np.float32), np.full(n, 2, np.int64)],
                           schema=PREDICTION_SCHEMA)


def _cfg(path, p, *more):
    return load_config(None, [f"job.run_dir={path}", f"sinks.predictions.path={path}/p.csv",
                              f"job.parallelism={p}", "evaluation.exact_progressive_auc=false",
                              "evaluation.windows=[]", *more])


def _slices(i, n=500):
    """Evaluation columns of batch ``i``: a slice value per event (three values)."""
    values = pa.array([f"v{(i + k) % 3}" for k in range(n)], pa.string())
    ts = pa.array(np.arange(i * n, (i + 1) * n, dtype=np.int64))
    batch = pa.record_batch([ts, values], names=["ts", "slice"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def test_two_subtasks_merged_equal_one_log(tmp_path):
    rng = np.random.default_rng(3)
    batches = [_preds(i * 500, 500, rng) for i in range(8)]
    one = RunLog(_cfg(tmp_path / "one", 1, "evaluation.slice_field=s"))
    for i, b in enumerate(batches):
        one.update(501 if i == 3 else 500, b, DEAD if i == 3 else b"", _slices(i))
    one.finish()
    cfg = _cfg(tmp_path / "two", 2, "evaluation.slice_field=s")
    subs, agg = [PartialLog(cfg, 0), PartialLog(cfg, 1)], AggregateLog(cfg, max_events=4001)
    for i, b in enumerate(batches):
        subs[i % 2].update(501 if i == 3 else 500, b, DEAD if i == 3 else b"", _slices(i))
        if i % 4 >= 2:
            agg.add(subs[i % 2].take())
    for s in subs:
        s.close()
    want = json.loads((tmp_path / "one" / METRICS_LOG).read_text().splitlines()[-1])
    got = json.loads((tmp_path / "two" / METRICS_LOG).read_text().splitlines()[-1])
    assert got["final"] and not got["auc_exact"]
    for k in ("events_in", "events_scored", "events_trained", "dead_letter", "dead_letter_by_reason", "auc",
              "auc_error_bound", "model_version"):
        assert got[k] == want[k], k
    for k in ("logloss", "mean_score", "ctr", "calibration"):
        assert abs(got[k] - want[k]) < 1e-12, k
    assert sorted(got["slices"]) == sorted(want["slices"]) == ["v0", "v1", "v2"]
    for v, m in want["slices"].items():
        assert got["slices"][v]["auc"] == m["auc"] and got["slices"][v]["events"] == m["events"], v
        assert abs(got["slices"][v]["logloss"] - m["logloss"]) < 1e-12
    parts = [tmp_path / "two" / f"p-{i}.csv" for i in (0, 1)]
    ids = np.sort(read_predictions(parts).column("event_id").to_numpy())
    assert np.array_equal(ids, np.arange(4000))
    assert (tmp_path / "two" / "dead_letter-1.jsonl").read_text().count("not_numeric") == 1


def test_a_subtask_cut_back_to_its_anchor_counts_each_batch_once(tmp_path):
    cfg = _cfg(tmp_path, 2)
    rng = np.random.default_rng(5)
    batches = [_preds(i * 100, 100, rng) for i in range(4)]
    sub, agg = PartialLog(cfg, 0), AggregateLog(cfg)
    sub.update(100, batches[0], b"")
    agg.add(sub.take())
    anchor = sub.files()
    sub.update(100, batches[1], DEAD)  # counted and written, then the subtask fails before sending
    sub.cut(anchor)
    for b in batches[1:]:  # replay of the tail, then on
        sub.update(100, b, b"")
    agg.add(sub.take())
    sub.close()
    agg.finish()
    final = json.loads((tmp_path / METRICS_LOG).read_text().splitlines()[-1])
    assert (final["events_in"], final["events_trained"], final["dead_letter"]) == (400, 400, 0)
    ids = read_predictions(tmp_path / "p-0.csv").column("event_id").to_numpy()
    assert np.array_equal(ids, np.arange(400))
    assert not (tmp_path / "dead_letter-0.jsonl").exists() or not (tmp_path / "dead_letter-0.jsonl").read_text()


def test_the_aggregate_snapshot_round_trips(tmp_path):
    cfg = _cfg(tmp_path, 2)
    sub, agg = PartialLog(cfg, 1), AggregateLog(cfg)
    sub.update(100, _preds(0, 100, np.random.default_rng(0)), b"")
    agg.add(sub.take())
    path = agg.save_state()
    before = agg.summary(False)
    agg.add(sub.take())
    agg.events_in = 999
    agg.load_state(path)
    after = agg.summary(False)
    assert (after.events_in, after.auc, after.logloss) == (before.events_in, before.auc, before.logloss)
    sub.close()
    agg.finish()
