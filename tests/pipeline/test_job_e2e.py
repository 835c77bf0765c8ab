"""End-to-end: the real job on the embedded Flink mini-cluster (PyFlink + tfio + TF worker).

Each PyFlink job costs 5-9 s to start plus the TF worker's import, so there are two jobs here
and every assertion about them shares the module-scoped runs.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pv
import pytest

from flinkdl.evaluation.metrics import LogLoss, auc_from_arrays
from flinkdl.sinks.predictions import read_predictions

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 60_000


def _flinkdl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flinkdl.cli", *args], cwd=ROOT, capture_output=True, check=False,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def generator_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gen")
    proc = _flinkdl("run", "jobs/click_stream.yaml", "--max-events", str(EVENTS),
                    "--set", f"job.run_dir={run_dir}",
                    "--set", f"sinks.predictions.path={run_dir}/predictions.csv",
                    "--summary", str(run_dir / "summary.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, json.loads((run_dir / "summary.json").read_text()), proc.stdout


def test_cli_prints_progress_and_writes_the_summary_contract(generator_run):
    _, summary, stdout = generator_run
    assert "AUC" in stdout and "events" in stdout
    for key in ("events_in", "events_trained", "dead_letter", "auc", "logloss", "rows_per_s", "model",
                "elapsed_s", "oracle_auc"):
        assert key in summary, key
    assert summary["model"] == "deepfm"


def test_generator_run_learns_and_accounts_for_every_event(generator_run):
    _, s, _ = generator_run
    assert s["events_in"] == EVENTS
    assert s["events_trained"] == s["events_in"] - s["dead_letter"]
    # Bound from the oracle: a 60k-event prequential run must recover at least a third of the
    # oracle's lift over chance (the learning curve starts at 0.5 on a fresh model).
    assert s["auc"] > 0.5 + (s["oracle_auc"] - 0.5) / 3, s


def test_prediction_file_reproduces_the_reported_metrics(generator_run):
    run_dir, s, _ = generator_run
    preds = read_predictions(run_dir / "predictions.csv")
    ids = preds.column("event_id").to_numpy()
    assert np.array_equal(np.sort(ids), np.arange(EVENTS)), "each event predicted exactly once"
    y, p = preds.column("label").to_numpy(), preds.column("score").to_numpy()
    assert auc_from_arrays(y, p) == pytest.approx(s["auc"], abs=1e-9)
    ll = LogLoss()
    ll.update(y, p)
    assert ll.get() == pytest.approx(s["logloss"], abs=1e-9)


def test_job_scores_are_the_in_process_models(generator_run):
    """The data path adds, drops and reorders nothing: the same model trained in this process on
    the generator's batches (featurized the same way, scored before each step) gives every event
    the score the job gave it."""
    from flinkdl.config.loader import load_config
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.features.transform import Featurizer
    from flinkdl.models.registry import build_model
    from flinkdl.sources.generator import ClickStream

    run_dir, _, _ = generator_run
    cfg = load_config(ROOT / "jobs" / "click_stream.yaml", [f"source.generator.events={EVENTS}"])
    import tensorflow as tf  # threads as they come: other tests of this process may have started TF

    layout = FeatureLayout.from_config(cfg.features)
    stream, fz, model = ClickStream.from_config(cfg.source.generator), Featurizer(cfg.features), build_model(
        layout, cfg.model)
    size, scores = cfg.source.generator.batch_size, []
    for i in range(-(-EVENTS // size)):
        feats, dead = fz.transform(stream.batch(i, size).slice(0, EVENTS - i * size), position_offset=i * size)
        assert not dead
        cols = [c.to_numpy() for c in feats.columns]
        ids, dense = np.stack(cols[2:2 + layout.n_ids], axis=1), np.stack(cols[2 + layout.n_ids:], axis=1)
        scores.append(model.predict_then_train(tf.constant(ids), tf.constant(dense), tf.constant(cols[1])).numpy())
    preds = read_predictions(run_dir / "predictions.csv").sort_by("event_id")
    job = preds.column("score").to_numpy()
    assert np.abs(job - np.concatenate(scores)).max() < 1e-4  # bit-equal on this machine


def test_bad_config_fails_before_starting_flink():
    proc = _flinkdl("run", "jobs/click_stream.yaml", "--set", "model.embedding_dim=-3", timeout=60)
    assert proc.returncode == 2
    assert "model.embedding_dim = -3" in proc.stderr


# --------------------------------------------------------------------------- watched directory

BAD_LINES = [
    "1\t2\t5",                      # field_count
    "1\t2\tfive\t881250949",        # rating not numeric → label_invalid
    "x9\t2\t3\t881250949",          # user id not an int
]
UNLABELLED = ["1\t2\t\t881250949"]  # no rating: scored, not trained on, not a dead letter


@pytest.fixture(scope="module")
def directory_run(tmp_path_factory, shared_data):
    """MovieLens-100k (first 20k events by time) plus bad lines, dropped into a watched dir."""
    work = tmp_path_factory.mktemp("ml")
    inbox, run_dir = work / "in", work / "run"
    inbox.mkdir()
    inter = pv.read_csv(shared_data / "movielens-100k" / "ml-100k.inter",
                        parse_options=pv.ParseOptions(delimiter="\t"))
    order = np.argsort(inter.column("timestamp:float").to_numpy(), kind="stable")[:20_000]
    good = inter.take(order)
    header = "\t".join(good.column_names)
    rows = ["\t".join(str(v) for v in r.values()) for r in good.to_pylist()]
    lines = rows[:10_000] + BAD_LINES + UNLABELLED + rows[10_000:]
    for name, part in (("a", lines[:12_000]), ("b", lines[12_000:])):
        tmp = inbox / f".{name}.tsv.tmp"
        tmp.write_text(header + "\n" + "\n".join(part) + "\n")
        os.rename(tmp, inbox / f"{name}.tsv")  # appears atomically
    t0 = time.time()
    proc = _flinkdl("run", "jobs/movielens.yaml", "--max-events", str(len(lines)),
                    "--set", f"source.directory.path={inbox}", "--set", f"job.run_dir={run_dir}",
                    "--set", f"sinks.predictions.path={run_dir}/predictions.csv",
                    "--summary", str(run_dir / "summary.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, json.loads((run_dir / "summary.json").read_text()), good, time.time() - t0


def test_directory_source_trains_every_good_row_once(directory_run):
    run_dir, s, good, _ = directory_run
    assert s["events_in"] == good.num_rows + len(BAD_LINES) + len(UNLABELLED)
    assert s["events_trained"] == good.num_rows == s["events_in"] - s["dead_letter"] - len(UNLABELLED)
    assert s["events_scored"] == good.num_rows + len(UNLABELLED)
    preds = read_predictions(run_dir / "predictions.csv")
    expected = (good.column("rating:float").to_numpy() >= 4).astype(np.float32)
    split = 12_000 - len(BAD_LINES) - len(UNLABELLED)  # good rows in file a (it also holds the others)
    a, b = expected[:split], expected[split:]
    labels = preds.column("label").to_numpy(zero_copy_only=False)
    assert preds.column("label").null_count == len(UNLABELLED)  # scored, with a null label
    labels = labels[~np.isnan(labels)]
    # Flink's FileSource keeps each file's line order; the order between files is its own.
    assert np.array_equal(labels, np.concatenate([a, b])) or np.array_equal(labels, np.concatenate([b, a]))
    assert s["auc"] > 0.6


def test_directory_source_dead_letters_name_reason_and_field(directory_run):
    run_dir, s, _, _ = directory_run
    assert s["dead_letter"] == len(BAD_LINES)
    dead = [json.loads(x) for x in (run_dir / "dead_letter.jsonl").read_text().splitlines()]
    by_reason = {d["reason"]: d for d in dead}
    assert sorted(by_reason) == ["bad_id", "field_count", "label_invalid"], dead
    assert s["dead_letter_by_reason"] == {r: 1 for r in by_reason}
    assert by_reason["field_count"]["raw"] == BAD_LINES[0]
    assert by_reason["label_invalid"]["value"] == "five"
    assert by_reason["bad_id"]["field"] == "user_id:token" and by_reason["bad_id"]["value"] == "x9"


# --------------------------------------------------------------------------- flink run -py


def test_job_runs_under_flink_run_py(tmp_path):
    """``flink run -py jobs/online_learning.py`` (pyflink's own Flink distribution, local target)."""
    import pyflink

    flink = Path(pyflink.__file__).parent / "bin" / "flink"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([str(flink), "run", "-t", "local", "-py", "jobs/online_learning.py",
                           "--config", "jobs/click_stream.yaml", "--max-events", "20000",
                           "--set", f"job.run_dir={tmp_path}", "--set", "sinks.predictions=null"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    final = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["final"] and final["events_trained"] == final["events_in"] == 20000
