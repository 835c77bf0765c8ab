"""End-to-end: process the files that exist, then stop (``--until-idle``), losing nothing on bad input.

One watched-directory job over a CSV file of 1,001 events (columns ``eid,label,user,movie,genres,ts``)
whose event 500 has a quote that never closes, plus a blank line (not an event): every good event is
predicted exactly once, the bad one is one dead letter, the run stops by itself once the directory
is idle, exits 0, and prints a progress line for a stream shorter than one report interval.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flinkdl.sinks.predictions import read_predictions

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EVENTS, BAD = 1001, 500

JOB = {
    "job": {"name": "bounded", "report_every_s": 5},
    "source": {"kind": "directory", "directory": {
        "format": "csv", "header": False, "columns": ["eid", "label", "user", "movie", "genres", "ts"]}},
    "features": {"event_id": "eid", "timestamp": "ts", "label": {"column": "label"},
                 "categorical": [{"name": "user", "type": "int"}, {"name": "movie", "type": "int"},
                                 {"name": "genres", "type": "string"}],
                 "hash_bits": 16},
    "model": {"name": "fm", "embedding_dim": 8},
}


def _lines() -> list[str]:
    lines = [f"{i},{i % 3 == 0:d},{i % 50},{i % 70},Action|Comedy,{1_000_000 + i}" for i in range(EVENTS)]
    lines[BAD] = f'{BAD},1,1,1,"unterminated,{1_000_000 + BAD}'
    return [*lines[:700], "", *lines[700:]]


def test_a_bad_quote_costs_one_event_and_the_run_stops_when_idle(tmp_path):
    src, run_dir = tmp_path / "in", tmp_path / "run"
    src.mkdir()
    tmp = src / ".events.csv.tmp"
    tmp.write_text("\n".join(_lines()) + "\n")
    tmp.rename(src / "events.csv")  # files appear atomically
    doc = {**JOB, "job": {**JOB["job"], "run_dir": str(run_dir)}}
    doc["source"]["directory"]["path"] = str(src)
    doc["sinks"] = {"predictions": {"path": str(run_dir / "predictions.csv")}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run([sys.executable, "-m", "flinkdl.cli", "run", str(tmp_path / "job.yaml"),
                           "--until-idle", "8", "--summary", str(tmp_path / "summary.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped"] == "idle" and summary["final"]
    assert (summary["events_in"], summary["events_trained"], summary["dead_letter"]) == (EVENTS, EVENTS - 1, 1)
    assert summary["dead_letter_by_reason"] == {"malformed": 1}
    ids = read_predictions(run_dir / "predictions.csv").column("event_id").to_pylist()
    assert sorted(ids) == [i for i in range(EVENTS) if i != BAD]
    (dead,) = [json.loads(x) for x in (run_dir / "dead_letter.jsonl").read_text().splitlines()]
    assert dead["reason"] == "malformed" and "unterminated" in dead["raw"]
    # the stream is shorter than one report interval, and still gets a progress line with every event
    progress = [x for x in proc.stdout.splitlines() if x.startswith("[") and " events " in x]
    assert progress and f"events {EVENTS:>10,}" in progress[-1] and "(idle: stopped)" in progress[-1]
