import json

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.loader import load_config
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.sinks.predictions import read_predictions
from flinkdl.sinks.run_log import METRICS_LOG, RunLog


def _preds(start, n, rng):
    return pa.record_batch([np.arange(start, start + n, dtype=np.int64), rng.random(n, dtype=np.float32),
                            rng.integers(0, 2, n).astype(np.float32), np.full(n, 1, np.int64)],
                           schema=PREDICTION_SCHEMA)


def test_counts_metrics_files_and_final_line(tmp_path):
    cfg = load_config(None, [f"job.run_dir={tmp_path}", f"sinks.predictions.path={tmp_path}/p.csv",
                             "evaluation.exact_progressive_auc=true"])
    prog = RunLog(cfg)
    rng = np.random.default_rng(1)
    batches = [_preds(i * 100, 100, rng) for i in range(3)]
    dead = b'{"reason": "not_numeric", "field": "I1"}\n{"reason": "bad_id", "field": "C1"}\n'
    prog.update(101, batches[0], b"")
    prog.update(102, batches[1], dead)
    prog.update(100, batches[2], b"")
    prog.finish()
    prog.finish()  # idempotent
    lines = [json.loads(x) for x in (tmp_path / METRICS_LOG).read_text().splitlines()]
    final = lines[-1]
    assert final["final"] and sum(x["final"] for x in lines) == 1
    assert (final["events_in"], final["events_trained"], final["dead_letter"]) == (303, 300, 2)
    assert final["dead_letter_by_reason"] == {"not_numeric": 1, "bad_id": 1}
    table = read_predictions(tmp_path / "p.csv")
    assert final["auc"] == auc_from_arrays(table.column("label").to_numpy(), table.column("score").to_numpy())
    assert len((tmp_path / "dead_letter.jsonl").read_text().splitlines()) == 2


def test_the_exact_auc_is_kept_for_a_bounded_stream_and_the_bounded_one_for_an_unbounded_stream(tmp_path):
    rng = np.random.default_rng(4)
    batches = [_preds(i * 1000, 1000, rng) for i in range(3)]
    labels = np.concatenate([b.column("label").to_numpy() for b in batches])
    scores = np.concatenate([b.column("score").to_numpy() for b in batches])
    finals = {}
    for name, max_events in (("bounded", 3000), ("unbounded", None)):
        cfg = load_config(None, [f"job.run_dir={tmp_path / name}"])
        prog = RunLog(cfg, max_events=max_events)
        for b in batches:
            prog.update(1000, b, b"")
        prog.finish()
        finals[name] = json.loads((tmp_path / name / METRICS_LOG).read_text().splitlines()[-1])
    exact = auc_from_arrays(labels, scores)
    assert finals["bounded"]["auc_exact"] and finals["bounded"]["auc"] == exact
    unbounded = finals["unbounded"]
    assert not unbounded["auc_exact"] and unbounded["auc"] == unbounded["auc_cumulative"]
    assert abs(unbounded["auc"] - exact) <= unbounded["auc_error_bound"]


def test_max_events_closes_the_run_and_ignores_the_rest(tmp_path):
    cfg = load_config(None, [f"job.run_dir={tmp_path}"])
    prog = RunLog(cfg, max_events=150)
    rng = np.random.default_rng(2)
    for i in range(4):
        prog.update(100, _preds(i * 100, 100, rng), b"")
    assert prog.done and prog.events_in == 200  # the batch that crossed the limit counts whole
    final = json.loads((tmp_path / METRICS_LOG).read_text().splitlines()[-1])
    assert final["final"] and final["events_in"] == 200


def test_restoring_a_snapshot_and_replaying_equals_an_uninterrupted_run(tmp_path):
    """The sink's exactly-once anchor: state + output files go back to the snapshot exactly."""
    rng = np.random.default_rng(3)
    batches = [_preds(i * 100, 100, rng) for i in range(4)]
    dead = b'{"reason": "bad_id", "field": "C1"}\n'

    def run(folder, crash: bool):
        cfg = load_config(None, [f"job.run_dir={folder}", f"sinks.predictions.path={folder}/p.csv"])
        prog = RunLog(cfg)
        prog.update(101, batches[0], dead)
        snapshot = prog.save_state()
        prog.update(100, batches[1], b"")
        if crash:  # what a failover does: a new process, the snapshot, the tail again
            prog.update(101, batches[2], dead)  # applied after the snapshot, then lost
            prog = RunLog(cfg)
            prog.load_state(snapshot)
            prog.update(100, batches[1], b"")
        prog.update(101, batches[2], dead)
        prog.update(100, batches[3], b"")
        prog.finish()
        final = json.loads((folder / METRICS_LOG).read_text().splitlines()[-1])
        return final, (folder / "p.csv").read_bytes()

    (clean, clean_csv), (restored, restored_csv) = run(tmp_path / "a", False), run(tmp_path / "b", True)
    assert restored_csv == clean_csv and restored_csv.count(b"\n") == 401
    for key in ("events_in", "events_trained", "dead_letter", "dead_letter_by_reason", "auc", "auc_cumulative",
                "logloss", "windows"):
        assert restored[key] == clean[key], key
    assert len((tmp_path / "b" / "dead_letter.jsonl").read_text().splitlines()) == 2


def test_a_snapshot_changed_after_it_was_written_is_refused(tmp_path):
    cfg = load_config(None, [f"job.run_dir={tmp_path}", f"sinks.predictions.path={tmp_path}/p.csv"])
    log = RunLog(cfg)
    log.update(100, _preds(0, 100, np.random.default_rng(1)), b"")
    snapshot = log.save_state()
    RunLog(cfg).load_state(snapshot)  # as written: loads
    data = bytearray(snapshot.read_bytes())
    data[-2] ^= 1
    snapshot.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="changed after it was written; refusing to load it"):
        RunLog(cfg).load_state(snapshot)


def _eval_columns(ts: np.ndarray, slices: list[str]) -> bytes:
    batch = pa.record_batch([pa.array(ts, pa.int64()), pa.array(slices, pa.string())], names=["ts", "slice"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def test_unlabelled_predictions_are_counted_and_written_but_not_evaluated(tmp_path):
    """Label metrics (AUC, log loss, windows, slices) see the labelled events alone; the summary counts
    every prediction as scored and the labelled ones as trained; the predictions file has every event."""
    sets = ["evaluation.exact_progressive_auc=true", "evaluation.slice_field=s",
            'evaluation.windows=[{"kind": "sliding_count", "size": 150}, {"kind": "tumbling_time", "size_s": 1}]']
    rng = np.random.default_rng(7)
    runs = {}
    for name in ("mixed", "labelled_only"):
        cfg = load_config(None, [f"job.run_dir={tmp_path / name}", f"sinks.predictions.path={tmp_path / name}/p.csv",
                                 "features.timestamp=ts", *sets])
        runs[name] = RunLog(cfg)
    for i in range(4):
        b = _preds(i * 100, 100, rng)
        has = rng.random(100) < 0.7
        label = pa.array(np.where(has, b.column("label").to_numpy(), np.nan), pa.float32(), from_pandas=True)
        mixed = b.set_column(2, "label", label)
        ts = 1_000 * i + np.arange(100) * 7
        sl = [f"v{k % 3}" for k in range(100)]
        runs["mixed"].update(100, mixed, b"", _eval_columns(ts, sl))
        runs["labelled_only"].update(int(has.sum()), b.filter(pa.array(has)),
                                     b"", _eval_columns(ts[has], [s for s, h in zip(sl, has, strict=True) if h]))
    finals = {}
    for name, run in runs.items():
        run.finish()
        finals[name] = json.loads((tmp_path / name / METRICS_LOG).read_text().splitlines()[-1])
    mixed, alone = finals["mixed"], finals["labelled_only"]
    assert (mixed["events_in"], mixed["events_scored"]) == (400, 400)
    assert mixed["events_trained"] == alone["events_trained"] == alone["events_scored"] < 400
    for key in ("auc", "auc_cumulative", "logloss", "mean_score", "ctr", "windows", "slices"):
        assert mixed[key] == alone[key], key
    written = read_predictions(tmp_path / "mixed" / "p.csv")
    assert written.num_rows == 400 and written.column("label").null_count == 400 - mixed["events_trained"]
