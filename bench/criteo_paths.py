"""Criteo-tiny through the user's paths (watched directory, Kafka) and in memory, vs Vowpal Wabbit.

The stream: ``criteo-tiny/train.tiny.csv`` (1,999 labelled rows, file order) as the original TSV
(label, I1..I13, C1..C26), read by ``jobs/criteo.yaml`` from a watched directory, and produced one csv
message per row to a local tansu broker for the same config with ``source.kind: kafka``. ``memory``
is the config without Flink (the same rows, featurizer and steps). VW ``-b 20 --loss_function
logistic`` on the same rows and order. The stream is too small for fine claims (418 clicks: the
AUC's standard error is about 0.015).

    PYTHONPATH=$PWD .venv/bin/python bench/criteo_paths.py
    PYTHONPATH=$PWD .venv/bin/python bench/criteo_paths.py --paths memory --set model.name=fm
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streams import DATA

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "jobs" / "criteo.yaml"
COLUMNS = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
PATHS = ["memory", "directory", "kafka"]


def raw_table(path: Path) -> pa.Table:
    """The labelled rows as strings in the TSV's column order (``Label`` → ``label``, no ``Id``)."""
    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in ["Id", "Label", *COLUMNS[1:]]}, strings_can_be_null=True))
    return t.rename_columns(["Id", "label", *COLUMNS[1:]]).drop_columns(["Id"])


def write_tsv(table: pa.Table, path: Path) -> None:
    """One TSV with a header (unquoted: a quoted header would be a dead letter)."""
    with open(path, "wb") as fh:
        fh.write(("\t".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))


def typed(table: pa.Table) -> pa.Table:
    """Numbers as floats (empty: null), categories as strings: what the job's parser gives."""
    return pa.table({c: table.column(c).cast(pa.float64()) if c == "label" or c.startswith("I")
                     else table.column(c) for c in table.column_names})


def memory(table: pa.Table, sets: list[str]) -> dict:
    """The config in this process: progressive AUC of steps of ``source.max_batch_rows``."""
    from quality import scored, train
    from streams import featurize

    from flinkdl.config.loader import load_config

    cfg = load_config(JOB, sets)
    ids, dense, labels = featurize(cfg, typed(table).to_batches())
    scores, secs, _ = train(cfg, ids, dense, labels, cfg.source.max_batch_rows)
    s = scored(labels, scores)
    return {"path": "memory", "events": len(labels), "auc": round(s["auc"], 4), "logloss": round(s["logloss"], 4),
            "seconds": round(secs, 1)}


def vw(table: pa.Table, tmp: Path) -> float:
    """VW's progressive AUC on the same rows in the same order."""
    from quality import run_vw
    from sklearn.metrics import roc_auc_score
    from streams import write_vw

    from flinkdl.config.loader import load_config

    _, labels = write_vw(load_config(JOB), typed(table).to_batches(), tmp / "c.vw")
    scores, _ = run_vw(tmp / "c.vw", tmp)
    return round(float(roc_auc_score(labels, scores)), 4)


def job(path: str, tmp: Path, events: int, bootstrap: str | None, sets: list[str]) -> dict:
    """One ``flinkdl run`` of the config through ``path``; the run summary's progressive AUC."""
    sets = [*sets, f"job.run_dir={tmp / path}", f"sinks.predictions.path={tmp / path / 'p.csv'}"]
    if path == "directory":
        src = tmp / "in"
        src.mkdir()
        (tmp / "c.tsv").rename(src / "c.tsv")
        sets += [f"source.directory.path={src}", "source.directory.header=true"]
    else:
        sets += ["source.kind=kafka", f"source.kafka.bootstrap_servers={bootstrap}", "source.kafka.topic=criteo",
                 "source.kafka.group_id=bench-criteo", "source.kafka.format=csv",
                 "source.kafka.starting_offsets=earliest", f"source.kafka.columns={json.dumps(COLUMNS)}"]
    summary = tmp / f"{path}.json"
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", str(JOB), "--max-events", str(events),
           "--summary", str(summary), *(x for s in sets for x in ("--set", s))]
    t = time.perf_counter()
    with open(tmp / f"{path}.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    s = json.loads(summary.read_text())
    return {"path": path, "events": s["events_trained"], "dead": s["dead_letter"], "auc": round(s["auc"], 4),
            "logloss": round(s["logloss"], 4), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", nargs="+", default=PATHS, choices=PATHS)
    p.add_argument("--file", type=Path, default=DATA / "criteo-tiny" / "train.tiny.csv")
    p.add_argument("--set", action="append", default=[], help="--set for every run")
    args = p.parse_args()
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import file_batches, produce

    table = raw_table(args.file)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [{"path": "vw", "events": table.num_rows, "auc": vw(table, tmp)}]
        print(json.dumps(rows[0]), flush=True)
        for path in args.paths:
            if path == "memory":
                rows.append(memory(table, args.set))
            elif path == "directory":
                write_tsv(table, tmp / "c.tsv")
                rows.append(job(path, tmp, table.num_rows, None, args.set))
            else:
                write_tsv(table, tmp / "k.tsv")
                with broker.running(tmp / "broker.log") as b:
                    broker.create_topics(b.bootstrap, ["criteo"])
                    produce(b.bootstrap, "criteo", file_batches(tmp / "k.tsv"), progress=False)
                    rows.append(job(path, tmp, table.num_rows, b.bootstrap, args.set))
            rows[-1]["auc_minus_vw"] = round(rows[-1]["auc"] - rows[0]["auc"], 4)
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"bench": "criteo_paths", "rows": rows}))


if __name__ == "__main__":
    main()
