"""MovieLens-100k through the job, by path: watched directory vs Kafka (one csv message per rating).

Each variant is one ``flinkdl run`` (a subprocess) over the stably time-sorted stream; its progressive
AUC is the run summary's. Kafka variants read one topic, produced once (``flinkdl produce --file``
semantics) to a local tansu broker before the runs, so every Kafka run starts on a full backlog.
VW (``-b 20 --loss_function logistic``) on the same rows and order is the anchor (bench/quality.py's).

    PYTHONPATH=$PWD .venv/bin/python bench/movielens_paths.py                  # every variant
    PYTHONPATH=$PWD .venv/bin/python bench/movielens_paths.py --variants kafka kafka-whole --events 20000
    PYTHONPATH=$PWD .venv/bin/python bench/movielens_paths.py --in-memory      # no Flink: the same configs
    PYTHONPATH=$PWD .venv/bin/python bench/movielens_paths.py --in-memory --cut odd-users   # a held-out cut

``--in-memory`` runs each variant's config without Flink: the same rows (side tables joined by the
job's ``Enricher``), featurized by the job's ``Featurizer``, learnt in order in steps of
``source.max_batch_rows``. A Kafka run reads windows whose sizes are not multiples of the step, so
its steps may differ at window ends; anything more than that between the two AUCs is the path's.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streams import DATA, movielens_raw

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = [DATA / "movielens-100k"]  #: --data
DIR_JOB, KAFKA_JOB = ROOT / "jobs" / "movielens.yaml", ROOT / "jobs" / "movielens_kafka.yaml"
BASE_FIELDS = 'features.categorical=[{name: "user_id:token", type: int}, {name: "item_id:token", type: int}]'
WITHOUT_SIDE = ["enrich=[]", BASE_FIELDS]
#: name → (config, --set overrides); kafka-enrich joins ml-100k.user and .item as jobs/movielens_kafka.yaml does
VARIANTS: dict[str, tuple[Path, list[str]]] = {
    "directory": (DIR_JOB, []),
    "kafka-whole": (KAFKA_JOB, ["source.max_batch_rows=1000000", *WITHOUT_SIDE]),  # before: each chunk one batch
    "kafka-default": (KAFKA_JOB, ["source.max_batch_rows=512", *WITHOUT_SIDE]),
    "kafka": (KAFKA_JOB, WITHOUT_SIDE),
    "kafka-enrich": (KAFKA_JOB, []),
}


#: held-out cuts of the stream (--cut): a subset of the users, or the label at rating >= 3 (ratings + 1)
CUTS = ("odd-users", "even-users", "ge3")


def write_cut(src: Path, cut: str, out: Path) -> Path:
    """A movielens-100k directory at ``out`` whose ``.inter`` is ``cut`` of ``src``'s (side tables linked)."""
    out.mkdir(parents=True, exist_ok=True)
    for side in ("ml-100k.user", "ml-100k.item"):
        (out / side).symlink_to(src / side)
    lines = (src / "ml-100k.inter").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    if cut == "ge3":  # the job's label is rating >= 4: one more star on every rating makes it >= 3
        rows = [[u, i, str(int(float(r)) + 1), t] for u, i, r, t in rows]
    else:
        rows = [r for r in rows if int(r[0]) % 2 == (cut == "odd-users")]
    (out / "ml-100k.inter").write_text("\n".join([lines[0], *("\t".join(r) for r in rows)]) + "\n")
    return out


def config_file(path: Path, tmp: Path) -> Path:
    """The job config with its side tables read from ``--data`` (the job files name ``../shared/data``)."""
    out = tmp / path.name
    out.write_text(path.read_text().replace("../shared/data/movielens-100k", str(DATA_DIR[0])))
    return out


def write_sorted(path: Path, events: int) -> None:
    """The sorted stream as one TSV with a header (unquoted: a quoted header would be a dead letter)."""
    table = movielens_raw(DATA_DIR[0] / "ml-100k.inter").slice(0, events)
    with open(path, "wb") as fh:
        fh.write(("\t".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))


def run_variant(name: str, tmp: Path, events: int, bootstrap: str | None, extra: list[str]) -> dict:
    cfg, sets = VARIANTS[name]
    cfg = config_file(cfg, tmp)
    sets = [*sets, *extra, f"job.run_dir={tmp / name}", f"sinks.predictions.path={tmp / name / 'p.csv'}"]
    if cfg.name == DIR_JOB.name:
        src = tmp / f"in-{name}"
        src.mkdir()
        write_sorted(src / ".ml.tmp", events)
        (src / ".ml.tmp").rename(src / "ml.tsv")
        sets.append(f"source.directory.path={src}")
    else:
        sets += [f"source.kafka.bootstrap_servers={bootstrap}", f"source.kafka.group_id=bench-{name}"]
    summary = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", str(cfg), "--max-events", str(events),
           "--summary", str(summary), *(x for s in sets for x in ("--set", s))]
    t, load0 = time.perf_counter(), os.getloadavg()[0]
    with open(tmp / f"{name}.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=1800)
    s = json.loads(summary.read_text())
    return {"variant": name, "events": s["events_trained"], "dead": s["dead_letter"], "auc": round(s["auc"], 4),
            "logloss": round(s["logloss"], 4), "seconds": round(time.perf_counter() - t, 1),
            "load": [round(load0, 1), round(os.getloadavg()[0], 1)]}


def memory_variant(name: str, tmp: Path, events: int, extra: list[str]) -> dict:
    """The variant's config in this process (no Flink): progressive AUC of steps of ``max_batch_rows``."""
    from quality import scored, train
    from streams import featurize

    from flinkdl.config.loader import load_config
    from flinkdl.features.enrich import Enricher

    path, sets = VARIANTS[name]
    cfg = load_config(config_file(path, tmp), [*sets, *extra])
    raw = movielens_raw(DATA_DIR[0] / "ml-100k.inter").slice(0, events)
    if cfg.enrich:
        raw = Enricher(cfg.enrich).enrich(raw)
    ids, dense, labels = featurize(cfg, raw.to_batches())
    scores, secs, per = train(cfg, ids, dense, labels, cfg.source.max_batch_rows)
    s = scored(labels, scores)
    return {"variant": f"{name} (in memory)", "events": len(labels), "auc": round(s["auc"], 4),
            "logloss": round(s["logloss"], 4), "seconds": round(secs, 1),
            **({"ensemble_variants": {k: round(scored(labels, v)["auc"], 4) for k, v in per.items()}} if per else {})}


def vw_auc(events: int, tmp: Path, side: bool) -> float:
    """VW on the same events (``side``: with the side tables' fields joined, as the job joins them)."""
    from quality import run_vw
    from sklearn.metrics import roc_auc_score
    from streams import write_vw

    from flinkdl.config.loader import load_config
    from flinkdl.features.enrich import Enricher

    cfg = load_config(config_file(KAFKA_JOB, tmp), [] if side else WITHOUT_SIDE)
    raw = movielens_raw(DATA_DIR[0] / "ml-100k.inter").slice(0, events)
    if side:  # a genre list is several words: VW reads them as several features of the namespace
        raw = Enricher(cfg.enrich).enrich(raw)
    _, labels = write_vw(cfg, raw.to_batches(), tmp / "ml.vw")
    scores, _ = run_vw(tmp / "ml.vw", tmp)
    return round(float(roc_auc_score(labels, scores)), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--set", action="append", default=[], help="--set for every run")
    p.add_argument("--data", type=Path, default=DATA_DIR[0], help="the movielens-100k directory")
    p.add_argument("--in-memory", action="store_true", help="the variants' configs without Flink")
    p.add_argument("--cut", choices=CUTS, help="a held-out cut of the stream instead of all of it (VW's too)")
    args = p.parse_args()
    DATA_DIR[0] = args.data.resolve()
    if args.cut:
        cut_dir = Path(tempfile.mkdtemp(prefix="ml-cut-"))
        atexit.register(shutil.rmtree, cut_dir, ignore_errors=True)
        DATA_DIR[0] = write_cut(DATA_DIR[0], args.cut, cut_dir / args.cut)
    if args.in_memory:
        return memory_main(args)
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import file_batches, produce

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [{"variant": "vw", "events": args.events, "auc": vw_auc(args.events, tmp, side=False)}]
        print(json.dumps(rows[0]), flush=True)
        if "kafka-enrich" in args.variants:
            rows.append({"variant": "vw-side-fields", "events": args.events, "auc": vw_auc(args.events, tmp, True)})
            print(json.dumps(rows[-1]), flush=True)
        kafka = [v for v in args.variants if VARIANTS[v][0] == KAFKA_JOB]
        with broker.running(tmp / "broker.log") if kafka else _nothing() as b:
            bootstrap = b.bootstrap if b else None
            if bootstrap:
                write_sorted(tmp / "ml.tsv", args.events)
                broker.create_topics(bootstrap, ["ratings"])
                produce(bootstrap, "ratings", file_batches(tmp / "ml.tsv"), progress=False)
            for v in args.variants:
                rows.append(run_variant(v, tmp, args.events, bootstrap, args.set))
                vw = rows[1] if v == "kafka-enrich" else rows[0]
                rows[-1]["auc_minus_vw"] = round(rows[-1]["auc"] - vw["auc"], 4)
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"bench": "movielens_paths", "rows": rows}))


def memory_main(args: argparse.Namespace) -> None:
    """Every variant in memory, against VW (with the side fields for side-table variants)."""
    with tempfile.TemporaryDirectory() as d:
        tmp, vw = Path(d), {}
        rows = []
        for v in args.variants:
            side = bool(load_variant_enrich(v, tmp, args.set))
            if side not in vw:
                vw[side] = vw_auc(args.events, tmp, side)
                rows.append({"variant": "vw-side-fields" if side else "vw", "events": args.events, "auc": vw[side]})
                print(json.dumps(rows[-1]), flush=True)
            rows.append({**memory_variant(v, tmp, args.events, args.set)})
            rows[-1]["auc_minus_vw"] = round(rows[-1]["auc"] - vw[side], 4)
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"bench": "movielens_paths", "in_memory": True, "rows": rows}))


def load_variant_enrich(name: str, tmp: Path, extra: list[str]) -> list:
    """The variant's side tables (empty: none)."""
    from flinkdl.config.loader import load_config

    path, sets = VARIANTS[name]
    return list(load_config(config_file(path, tmp), [*sets, *extra]).enrich)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
