"""Progressive AUC / logloss of LR, FM, DeepFM and the ensemble vs Vowpal Wabbit and River, per stream.

    python bench/quality.py                                   # drift stream (1M events) and MovieLens-100k
    python bench/quality.py --datasets drift --events 300000 --no-job
    python bench/quality.py --datasets family-0 family-1 family-2 family-3 family-4 movielens-side \
        --events 100000 --models lr fm deepfm ensemble ensemble-lfd --no-job

Every model predicts each event before it learns from it, and every score goes through the same
exact AUC code (``flinkdl.evaluation.metrics``). Streams (bench/streams.py, bench/family.py): the
built-in drift stream (``jobs/click_stream.yaml``'s generator; drift at ``drift_at``), the
generator family's members ``family-N`` (drift point and width scaled to ``--events``),
MovieLens-100k sorted by time (``jobs/movielens.yaml``: label rating >= 4, hashed user and item
ids) and ``movielens-side`` (the same with the ``.user`` and ``.item`` fields joined on).

- ours: LR, FM, DeepFM, ``ensemble`` (the job's model at ×{1, ½, 2} its learning rates, or the
  variants of ``--set model.ensemble.variants=[...]``) and ``ensemble-lfd`` (LR, FM, DeepFM), trained
  in this process on the job's featurized events, in order, in batches of the job's batch size
  (``--ml-batch`` for MovieLens); an ensemble's variants get rows of their own. Plus DeepFM through the
  whole Flink job on ``drift``/``movielens`` (``--no-job`` skips it) with its prediction file read back;
- Vowpal Wabbit ``-b 20 --loss_function logistic`` on the same events in its own text format
  (``-p`` gives its progressive predictions, ``--link logistic`` as probabilities);
- River ``LogisticRegression`` (AdaGrad 0.1) on the same features (read from the VW file), one
  event at a time, in its own interpreter (``--river-python``: River >= 0.22 needs numpy 2; skipped
  when that interpreter has no River).

At the end, per stream: VW's AUC, the best of ours, and the gaps of the default config (the job's
own model) and of the ensemble to that best; then the same as one JSON line.

Drift recovery: the AUC of the ``--window`` events before the drift is the pre-drift level;
recovery is the number of events after the drift at which the AUC of the last ``--window``
events (all after the drift) first comes back within 0.01 of it (so at least ``--window``).
The generator's true click probabilities (the oracle) get the same treatment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).parent))

from end_to_end import report
from streams import MODEL_SETTINGS, featurize, generator_raw, movielens_raw, raw_batches, write_vw

from flinkdl.config.generator_family import PRESETS
from flinkdl.config.schema import JobConfig
from flinkdl.evaluation.metrics import LogLoss, auc_from_arrays

CONFIGS = {"drift": "jobs/click_stream.yaml", "movielens": "jobs/movielens.yaml"}
#: DeepFM as ``jobs/click_stream.yaml`` had it before it was tuned for progressive AUC (issue 8), for reference
DEEPFM_BEFORE = ["model.field_weights=false", "model.micro_batch_rows=null", "model.optimizer.learning_rate=0.02",
                 "model.dense_optimizer.learning_rate=0.001"]


def variants(dataset: str, models: list[str]) -> list[tuple[str, list[str]]]:
    """(model, settings) pairs to run on ``dataset``: each model, plus DeepFM's old settings on the drift stream."""
    if dataset != "drift":
        return [(m, []) for m in models]
    out = [(m, MODEL_SETTINGS.get(m, [])) for m in models]
    return out + ([("deepfm", DEEPFM_BEFORE)] if "deepfm" in models else [])


def label(model: str, cfg, batch: int) -> str:
    """``deepfm (in memory, batch 4096 in steps of 512, FwFM, lr 0.05 / 0.003)``: what a row ran."""
    m = cfg.model
    steps = f" in steps of {m.micro_batch_rows}" if m.micro_batch_rows and m.micro_batch_rows < batch else ""
    fw = ", FwFM" if m.field_weights and model != "lr" else ""
    lr = f"lr {m.optimizer.learning_rate}" + (f" / {m.dense_optimizer.learning_rate}" if m.dense_optimizer else "")
    return f"{model} (in memory, batch {batch}{steps}{fw}, {lr})"


def scored(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Progressive AUC and logloss of a whole stream of (label, score made before learning)."""
    ll = LogLoss()
    ll.update(labels, scores.astype(np.float32))
    return {"auc": auc_from_arrays(labels, scores.astype(np.float32)), "logloss": ll.get()}


def recovery(labels: np.ndarray, scores: np.ndarray, drift_at: int, window: int, step: int = 1000,
             tol: float = 0.01) -> dict:
    """Pre-drift window AUC, and events after the drift until a window's AUC is within ``tol`` of it."""
    def auc(end: int) -> float:
        return auc_from_arrays(labels[end - window:end], scores[end - window:end].astype(np.float32))

    pre, worst = auc(drift_at), 1.0
    for end in range(drift_at + window, len(labels) + 1, step):
        a = auc(end)
        worst = min(worst, a)
        if a >= pre - tol:
            return {"pre_drift_auc": pre, "recovery_events": end - drift_at, "worst_window_auc": worst}
    return {"pre_drift_auc": pre, "recovery_events": None, "worst_window_auc": worst}


def run_vw(data: Path, tmp: Path) -> tuple[np.ndarray, float]:
    """VW's progressive predictions (made before it learns each event) on its own text file."""
    import vowpalwabbit

    preds = tmp / "q.pred"
    t = time.perf_counter()
    vowpalwabbit.Workspace(f"-d {data} -b 20 --loss_function logistic --link logistic -p {preds} --quiet").finish()
    return np.loadtxt(preds, dtype=np.float64, usecols=0), time.perf_counter() - t


#: River in its own interpreter: reads the VW text file (the same features), predicts, then learns
_RIVER_CHILD = """
import sys, time, numpy as np
from river import linear_model, optim
model, scores, t = linear_model.LogisticRegression(optimizer=optim.AdaGrad(0.1)), [], 0.0
for line in open(sys.argv[1]):
    label, *spaces = line.rstrip("\\n").split("|")
    x = {}
    for space in spaces:
        for tok in space.split()[1:]:
            name, _, val = tok.partition(":")
            x[name] = float(val) if val else 1.0
    t0 = time.perf_counter()
    scores.append(model.predict_proba_one(x).get(True, 0.5))
    model.learn_one(x, label.strip() == "1")
    t += time.perf_counter() - t0
np.save(sys.argv[2], np.asarray(scores))
print(t)
"""


def run_river(python: str, data: Path, tmp: Path) -> tuple[np.ndarray, float]:
    """River LR on the VW file's events; seconds count River's predict + learn only."""
    out = subprocess.run([python, "-c", _RIVER_CHILD, str(data), str(tmp / "river.npy")],
                         check=True, capture_output=True, text=True)
    return np.load(tmp / "river.npy"), float(out.stdout.split()[-1])


def run_job_scores(dataset: str, sets: list[str], tmp: Path, events: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole Flink job; its prediction file, in event order, as (labels, scores)."""
    from flinkdl.config.loader import load_config
    from flinkdl.runner import run

    preds = tmp / f"job-{dataset}.csv"
    sets = [*sets, f"job.run_dir={tmp / ('job-' + dataset)}", f"sinks.predictions.path={preds}"]
    if dataset == "movielens":  # the sorted stream as one file, appearing atomically in the watched dir
        src = tmp / "ml-in"
        src.mkdir()
        table = movielens_raw().slice(0, events)
        with open(src / ".ml.tmp", "wb") as fh:  # pyarrow quotes a header even with quoting_style="none",
            fh.write(("\t".join(table.column_names) + "\n").encode())  # and a quoted one is a dead letter
            pacsv.write_csv(table, fh, pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))
        (src / ".ml.tmp").rename(src / "ml.tsv")
        sets.append(f"source.directory.path={src}")
    run(load_config(CONFIGS[dataset], sets), events, oracle=False)
    p = pacsv.read_csv(preds).sort_by("event_id")
    return p.column("label").to_numpy(), p.column("score").to_numpy()


def oracle_scores(cfg, events: int) -> np.ndarray:
    """The generator's true click probabilities of its first ``events`` events."""
    from flinkdl.sources.generator import ClickStream

    s, size = ClickStream.from_config(cfg.source.generator), 65536
    return np.concatenate([s.batch(i, size, with_truth=True).column("p_true").to_numpy()
                           for i in range(-(-events // size))])[:events]


def stream(dataset: str, args: argparse.Namespace) -> tuple[JobConfig, list, int | None]:
    """(job config, raw batches, drift point or None) of ``dataset``."""
    from family import family_config, movielens_side_config, movielens_side_raw

    from flinkdl.config.loader import load_config

    if dataset.startswith("family-"):
        cfg = family_config(load_config(CONFIGS["drift"], args.set), dataset, args.events, getattr(args, "bags", True))
        gen = cfg.source.generator
        return cfg, list(generator_raw(cfg, args.events)), None if gen.family.drift == "none" else gen.drift_at
    cfg = load_config(CONFIGS["movielens" if dataset.startswith("movielens") else dataset], args.set)
    if dataset == "movielens-side":
        return movielens_side_config(cfg), movielens_side_raw().slice(0, args.ml_events).to_batches(), None
    drift = cfg.source.generator.drift_at if dataset == "drift" else None
    return cfg, raw_batches(cfg, dataset, args.events if dataset == "drift" else args.ml_events), drift


def model_sets(model: str, cfg: JobConfig) -> list[str]:
    """Settings of a bench model name over the job's config (``ensemble``: the job's model at ×{1, ½, 2}
    its learning rates; ``ensemble-lfd``: LR, FM and DeepFM with the job's settings)."""
    if model == "ensemble":
        return ["model.name=ensemble", f"model.ensemble.base={cfg.model.name}"]
    if model == "ensemble-lfd":
        return ["model.name=ensemble",
                "model.ensemble.variants=[{model: {name: lr}}, {model: {name: fm}}, {model: {name: deepfm}}]"]
    return [f"model.name={model}", *MODEL_SETTINGS.get(model, [])]


def train(cfg: JobConfig, ids: np.ndarray, dense: np.ndarray, labels: np.ndarray,
          batch: int) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """A fresh ``cfg.model`` on the rows in order: prequential scores, seconds, an ensemble's per-variant scores."""
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model
    from flinkdl.models.ensemble import Ensemble

    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    n, t = len(labels), time.perf_counter()
    scores, per = np.empty(n, np.float32), {}
    for a in range(0, n, batch):
        sl = slice(a, a + batch)
        scores[sl] = model.predict_then_train(ids[sl], dense[sl], labels[sl]).numpy()
        if isinstance(model, Ensemble):
            for k, v in model.last_scores.items():
                per.setdefault(k, np.empty(n, np.float32))[sl] = v
    return scores, time.perf_counter() - t, per


def evaluate_dataset(dataset: str, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """Every model and anchor on one stream; one row each (an ensemble's variants too)."""
    from family import with_sets

    base, raw, drift = stream(dataset, args)
    ids, dense, labels = featurize(base, raw)
    n = len(labels)
    batch = args.ml_batch if dataset.startswith("movielens") else base.source.generator.batch_size
    runs: dict[str, tuple[np.ndarray, np.ndarray, float | None]] = {}
    for model, sets in variants(dataset, args.models):
        cfg = with_sets(base, [*model_sets(model, base), *sets])
        scores, secs, per = train(cfg, ids, dense, labels, batch)
        ens = cfg.model.ensemble
        name = (f"{model} ({ens.serve if ens else 'mixture'})" if model.startswith("ensemble")
                else label(model, cfg, batch))
        runs[name] = (labels, scores, secs)
        runs.update({f"  {model} variant {k}": (labels, v, None) for k, v in per.items()})
        print(dataset, name, auc_from_arrays(labels, scores), f"{secs:.1f}s", flush=True)
    if args.job and dataset in ("drift", "movielens"):
        t = time.perf_counter()
        jl, js = run_job_scores(dataset, [*args.set, "model.name=deepfm"], tmp, n)
        runs["deepfm (Flink job, the config's settings)"] = (jl, js, time.perf_counter() - t)
    write_vw(base, raw, tmp / f"{dataset}.vw")
    vw, secs = run_vw(tmp / f"{dataset}.vw", tmp)
    runs["Vowpal Wabbit"] = (labels, vw, secs)
    if args.river_python and _has_river(args.river_python):
        river, secs = run_river(args.river_python, tmp / f"{dataset}.vw", tmp)
        runs["River LR (AdaGrad 0.1)"] = (labels, river, secs)
    if drift is not None:
        runs["oracle (true p)"] = (labels, oracle_scores(base, n), None)
    rows = []
    for name, (y, s, secs) in runs.items():
        row = {"dataset": dataset, "model": name, "events": len(y), "seconds": secs, **scored(y, s),
               "default": name.startswith(f"{base.model.name} (")}
        if drift is not None and drift + args.window <= len(y):
            row.update(recovery(y, s, drift, args.window))
        rows.append(row)
        print(json.dumps(row), flush=True)
    vw_auc = rows[[r["model"] for r in rows].index("Vowpal Wabbit")]["auc"]
    for r in rows:
        r["auc_minus_vw"] = r["auc"] - vw_auc
    return rows


def gaps(rows: list[dict]) -> dict:
    """Per stream: VW's AUC, each model's AUC − VW, and the default config's and the ensemble's gap to
    the best of ours (every model and variant measured here)."""
    out: dict[str, dict] = {}
    for d in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == d]
        ours = [r for r in mine if not r["model"].startswith(("Vowpal", "River", "oracle"))]
        best = max(ours, key=lambda r: r["auc"])
        default = next((r for r in mine if r["default"]), None)
        ens = next((r for r in mine if r["model"].startswith("ensemble (")), None)
        out[d] = {"vw_auc": next(r["auc"] for r in mine if r["model"] == "Vowpal Wabbit"),
                  "minus_vw": {r["model"].strip(): round(r["auc_minus_vw"], 4) for r in mine},
                  "best": best["model"].strip(), "best_auc": best["auc"],
                  "default_minus_best": default and default["auc"] - best["auc"],
                  "ensemble_minus_best": ens and ens["auc"] - best["auc"]}
    return out


def _has_river(python: str) -> bool:
    ok = subprocess.run([python, "-c", "import river"], capture_output=True).returncode == 0
    if not ok:
        print(f"River is not installed for {python}: skipped (--river-python)", flush=True)
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["drift", "movielens"],
                   choices=[*CONFIGS, "movielens-side", *sorted(PRESETS)])
    p.add_argument("--models", nargs="+", default=["lr", "fm", "deepfm"],
                   help="lr fm deepfm ensemble ensemble-lfd")
    p.add_argument("--events", type=int, default=1_000_000, help="events of the drift stream and family members")
    p.add_argument("--ml-events", type=int, default=None, help="MovieLens: the first N events (default: all)")
    p.add_argument("--ml-batch", type=int, default=8, help="in-memory batch size on MovieLens")
    p.add_argument("--window", type=int, default=20_000, help="events per window for the drift recovery")
    p.add_argument("--no-job", dest="job", action="store_false", help="skip DeepFM through the Flink job")
    p.add_argument("--river-python", default=sys.executable,
                   help="an interpreter with River >= 0.22 (River 0.21, the last for numpy 1, slows down with "
                        "the model's size: ~700 ev/s after 3k events here); '' skips River")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for d in args.datasets for r in evaluate_dataset(d, args, Path(tmp))]
    report(rows, ["dataset", "model", "events", "progressive AUC", "AUC − VW", "logloss", "seconds",
                  "pre-drift AUC (window)", "worst window AUC after drift", "events to recover (±0.01)"],
           lambda r: [r["dataset"], r["model"], f"{r['events']:,}", f"{r['auc']:.4f}", f"{r['auc_minus_vw']:+.4f}",
                      f"{r['logloss']:.4f}", "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
                      *(_fmt(r.get(k)) for k in ("pre_drift_auc", "worst_window_auc")),
                      "-" if "recovery_events" not in r else
                      (f"{r['recovery_events']:,}" if r["recovery_events"] else "not recovered")], args.json)
    summary = gaps(rows)
    print("\n| stream | VW AUC | best of ours | best − VW | default − best | ensemble − best |\n" + "|---" * 6 + "|")
    for d, g in summary.items():
        print(f"| {d} | {g['vw_auc']:.4f} | {g['best']} | {g['best_auc'] - g['vw_auc']:+.4f} | "
              f"{_fmt(g['default_minus_best'], '+.4f')} | {_fmt(g['ensemble_minus_best'], '+.4f')} |")
    print(json.dumps({"bench": "quality", "streams": summary}))


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


if __name__ == "__main__":
    main()
