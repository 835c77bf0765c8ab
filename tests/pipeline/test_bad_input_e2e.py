"""End-to-end bad input: every kind of bad message through the real job over Kafka (tansu broker).

Two PyFlink jobs: one on CSV messages, one on Arrow messages. Each topic holds good events with the
bad messages in the middle (no message has a Kafka key). While the job runs, its Prometheus
``/metrics`` is scraped once everything before the sentinel is counted; then a sentinel batch of
good events takes it to ``--max-events`` and it finishes. Checked: each bad message is one dead
letter (file and dead-letter topic) with its reason, the per-reason counts agree in the summary, the
dead-letter file and Prometheus, and every good event is predicted exactly once.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import encode, generator_batches, read_topic

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
GOOD, SENTINEL, BIG = 2000, 200, 10 << 20  # good events before the sentinel; a 10 MB field


def _csv(event_id: int | str, **over: str) -> bytes:
    """One CSV message: the stream's first event with another event id and ``over`` fields replaced."""
    first = next(generator_batches(1, 1))
    (row,) = encode(first, "csv")
    fields = row.decode().split(",")
    for k, v in {"event_id": str(event_id), **over}.items():
        fields[first.schema.names.index(k)] = v
    return ",".join(fields).encode()


def _bad_csv() -> dict[str, list[bytes | None]]:
    """reason → the bad messages that must end up with it (event ids from 90000, never trained)."""
    line = _csv(90000)
    return {
        "field_count": [b",".join(line.split(b",")[:10]), line + b",extra", line + b",new_column"],
        "bad_id": [_csv(90001, C1="seven")],
        "not_numeric": [_csv(90002, I1="abc")],
        "not_finite": [_csv(90003, I2="nan"), _csv(90004, I3="-inf")],
        "field_too_long": [_csv(90005, C2="x" * BIG)],
        "empty": [b"", None],  # an empty value and a null one (tombstone)
        "undecodable": [_csv(90006, C3="\x00").replace(b"\x00", b"\xff\xfe")],
        "label_out_of_range": [_csv(90007, label="2"), _csv(90008, label="-1"), _csv(90009, label="0.5")],
        "missing_id": [_csv("")],  # the id column empty
        # a quote that never closes costs its own message only (it used to swallow every later one)
        "malformed": [_csv(90010, C4='"unterminated')],
    }


def _arrow(batch: pa.RecordBatch) -> bytes:
    (msg,) = encode(batch, "arrow")
    return msg


def _bad_arrow() -> tuple[dict[str, list[bytes]], bytes]:
    """reason → whole bad messages; and one message of 5 events (ids 90000+): two bad rows, a new column."""
    good = next(generator_batches(5, 5))
    msg = _arrow(good)
    nested = good.set_column(good.schema.get_field_index("C1"), "C1", pa.array([[1]] * 5))
    whole = {"corrupt_arrow": [b"ARROW1 but not really", msg[: len(msg) // 2]], "empty": [b""],
             "missing_column": [_arrow(good.drop_columns(["C1"]))],  # (no label column: unlabelled, scored)
             "wrong_type": [_arrow(nested)]}
    ids = pa.array(range(90000, 90005), pa.int64())
    mixed = good.set_column(0, "event_id", ids)
    mixed = mixed.set_column(mixed.schema.get_field_index("I1"), "I1", pa.array([1.0, float("nan"), 2.0, 3.0, 4.0]))
    mixed = mixed.set_column(mixed.schema.get_field_index("label"), "label", pa.array([0, 1, 2, 1, 0]))
    return whole, _arrow(mixed.append_column("campaign", pa.array(["a", "b", None, "d", "e"])))


def _produce(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 64 << 20, "linger.ms": 20})
    for v in values:
        p.produce(topic, v)  # no key: the job never reads keys
    assert p.flush(60) == 0


def _scrape(run_dir: Path) -> dict[tuple[str, tuple], float]:
    """The sink's /metrics as {(sample name, sorted extra labels): value}; {} until it serves."""
    target = run_dir / "prometheus" / "sink-0.json"
    try:
        host = json.loads(target.read_text())[0]["targets"][0]
        text = urllib.request.urlopen(f"http://{host}/metrics", timeout=5).read().decode()
    except (OSError, ValueError, IndexError):
        return {}
    base = {"job", "model", "subtask"}
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in base))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _run(kafka_broker, tmp_path_factory, fmt: str, values: list[bytes | None], events_in: int,
         sentinel: list[bytes]) -> dict:
    b, name = kafka_broker.bootstrap, f"bad-{fmt}"
    run_dir = tmp_path_factory.mktemp(name)
    create_topics(b, [name, f"preds-{name}", f"dead-{name}"])
    _produce(b, name, values)
    sets = {"source.kafka.bootstrap_servers": b, "source.kafka.topic": name, "source.kafka.format": fmt,
            "source.kafka.group_id": f"g-{name}", "source.kafka.dead_letter_topic": f"dead-{name}",
            "sinks.kafka.topic": f"preds-{name}", "job.run_dir": run_dir, "model.name": "lr",
            "metrics.enabled": "true", "job.report_every_s": 0.5, "source.kafka.batch_ms": 100}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream_kafka.yaml", *args,
                             # the whole sentinel: its rows may arrive in two windows (processing time)
                             "--max-events", str(events_in + SENTINEL), "--summary", str(run_dir / "s.json")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        metrics: dict = {}
        while metrics.get(("flinkdl_events_in_total", ())) != events_in:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() - t0 < 400, f"no {events_in} events counted in time: {metrics}"
            time.sleep(0.5)
            metrics = _scrape(run_dir)
        _produce(b, name, sentinel)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((run_dir / "s.json").read_text())
    dead_file = [json.loads(x) for x in (run_dir / "dead_letter.jsonl").read_text().splitlines()]
    return {"summary": summary, "metrics": metrics, "dead_file": dead_file, "elapsed_s": time.time() - t0,
            "preds": Counter(int(m.key()) for m in read_topic(b, f"preds-{name}", expect=summary["events_trained"])),
            "dead_topic": read_topic(b, f"dead-{name}", expect=len(dead_file))}


@pytest.fixture(scope="module")
def csv_run(kafka_broker, tmp_path_factory):
    rows = encode(next(generator_batches(GOOD + SENTINEL, GOOD + SENTINEL)), "csv")
    bad = _bad_csv()
    values = [*rows[: GOOD // 2], *(v for vs in bad.values() for v in vs), *rows[GOOD // 2: GOOD]]
    run = _run(kafka_broker, tmp_path_factory, "csv", values, len(values), rows[GOOD:])
    return run, bad


@pytest.fixture(scope="module")
def arrow_run(kafka_broker, tmp_path_factory):
    batches = [_arrow(b) for b in generator_batches(GOOD + SENTINEL, 500)]
    whole, mixed = _bad_arrow()
    values = [batches[0], *(v for vs in whole.values() for v in vs), mixed, *batches[1:4]]
    events_in = GOOD + sum(map(len, whole.values())) + 5
    run = _run(kafka_broker, tmp_path_factory, "arrow", values, events_in, batches[4:])
    return run, {**whole, "not_finite": [mixed], "label_out_of_range": [mixed]}


def _reasons(bad: dict) -> dict[str, int]:
    return {r: len(v) for r, v in bad.items()}


@pytest.mark.parametrize("fixture", ["csv_run", "arrow_run"])
def test_every_bad_message_is_one_dead_letter_with_its_reason_everywhere(fixture: str, request) -> None:
    run, bad = request.getfixturevalue(fixture)
    want = _reasons(bad)
    s = run["summary"]
    assert s["dead_letter_by_reason"] == want and s["dead_letter"] == sum(want.values())
    assert Counter(d["reason"] for d in run["dead_file"]) == want
    assert Counter(dict(m.headers())["reason"].decode() for m in run["dead_topic"]) == want
    prom = {dict(k[1])["reason"]: v for k, v in run["metrics"].items() if k[0] == "flinkdl_dead_letters_total"}
    assert {r: v for r, v in prom.items() if v} == want
    for d in run["dead_file"]:
        assert d["position"] is not None and (d["field"] or d["value"]), d
    print(f"{fixture}: job {run['elapsed_s']:.1f}s")  # runtime, in the -rA report


@pytest.mark.parametrize("fixture", ["csv_run", "arrow_run"])
def test_every_good_event_is_trained_and_predicted_exactly_once(fixture: str, request) -> None:
    run, _ = request.getfixturevalue(fixture)
    good = list(range(GOOD + SENTINEL))
    if fixture == "arrow_run":
        good += [90000, 90003, 90004]  # the good rows of the mixed message
    assert sorted(run["preds"]) == sorted(good) and set(run["preds"].values()) == {1}
    s = run["summary"]
    assert s["events_trained"] == len(good) and s["events_in"] == s["events_trained"] + s["dead_letter"]


def test_dead_letters_name_field_and_value_and_keep_raw_bytes(csv_run) -> None:
    run, _ = csv_run
    by = {}
    for d in run["dead_file"]:
        by.setdefault(d["reason"], []).append(d)
    (long,) = by["field_too_long"]
    assert long["field"] == "C2" and long["value"].startswith(f"{BIG} bytes: xxx") and long["raw_bytes"] > BIG
    (undecodable,) = by["undecodable"]
    assert undecodable["raw_encoding"] == "base64" and undecodable["value"].startswith("byte 0xff")
    assert base64.b64decode(undecodable["raw"]) == _bad_csv()["undecodable"][0]
    assert sorted(d["value"] for d in by["label_out_of_range"]) == ["-1", "0.5", "2"]
    assert {(d["field"], d["value"]) for d in by["not_finite"]} == {("I2", "nan"), ("I3", "-inf")}
    (msg,) = [m for m in run["dead_topic"] if dict(m.headers())["reason"] == b"undecodable"]
    assert dict(msg.headers())["raw-encoding"] == b"base64" and msg.value() == undecodable["raw"].encode()


def test_schema_drift_is_accepted_and_counted(arrow_run) -> None:
    run, _ = arrow_run
    assert run["summary"]["schema_drift"] == {"campaign": 4}
    assert run["metrics"][("flinkdl_schema_drift_rows_total", (("column", "campaign"),))] == 4
