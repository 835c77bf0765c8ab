"""The broker killed with SIGKILL mid-stream: Kafka source and sink survive it (exactly-once mode).

A durable local broker (tansu on a local S3 store, flinkdl/devtools/broker.py) so a restarted broker
still has its topics. The clean run reads a topic produced beforehand; the fault run reads a live topic
that a producer fills at 4096 events/s, and the broker is killed a third of the way through and
started again a second later on the same port and storage. Arrow messages of 1024 events make
the batches (and so the computation) the same in both runs.

The prediction *file* is exactly-once; the predictions *topic* is at-least-once (no Python
checkpoint hook to tie Kafka transactions to): every event id must be on it, duplicates are
counted and reported.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from flinkdl.devtools import broker
from flinkdl.devtools.produce import generator_batches, produce, read_topic
from tests import faults
from tests.faults import BATCH, EVENTS, RATE, Job, compare, outcome, overrides
from tests.ps.conftest import PsProcess

pytestmark = pytest.mark.e2e


def _run(b: broker.Broker, base: Path, name: str, kill_broker: bool) -> dict:
    run_dir, ps = base / name, PsProcess(base / f"{name}-ps-versions")
    broker.create_topics(b.bootstrap, [f"clicks-{name}", f"preds-{name}", f"dead-{name}"])
    stream = generator_batches(EVENTS, batch_size=BATCH)
    producer = threading.Thread(target=produce, args=(b.bootstrap, f"clicks-{name}", stream, "arrow"),
                                kwargs={"rate": RATE if kill_broker else None, "progress": False})
    producer.start()
    sets = [*overrides(run_dir, ps.address, generator=False), f"source.kafka.bootstrap_servers={b.bootstrap}",
            f"source.kafka.topic=clicks-{name}", "source.kafka.format=arrow", f"source.kafka.group_id=g-{name}",
            f"source.kafka.dead_letter_topic=dead-{name}", f"sinks.kafka.topic=preds-{name}"]
    job = Job(["run", "jobs/click_stream_kafka.yaml", *(a for o in sets for a in ("--set", o)),
               "--max-events", str(EVENTS), "--summary", str(run_dir / "summary.json")], base / f"{name}.log")
    try:
        if kill_broker:
            faults.bounce_broker(b, run_dir, job)
        job.wait(500)
        producer.join(60)
        out = outcome(run_dir, ps.address, json.loads((run_dir / "summary.json").read_text()))
    finally:
        job.kill()
        ps.stop()
    keys = Counter(int(m.key()) for m in read_topic(b.bootstrap, f"preds-{name}", expect=EVENTS))
    return {**out, "topic_keys": keys}


@pytest.fixture(scope="module")
def durable_broker(tmp_path_factory):
    with broker.running(durable_dir=tmp_path_factory.mktemp("durable-broker")) as b:
        yield b


def test_broker_killed_with_sigkill_source_and_sink_survive(durable_broker, tmp_path):
    clean = _run(durable_broker, tmp_path, "clean", kill_broker=False)
    run = _run(durable_broker, tmp_path, "broker-killed", kill_broker=True)
    gap = compare(run, clean, "broker")
    keys = run["topic_keys"]
    duplicates = sum(keys.values()) - len(keys)
    print(f"predictions topic: {len(keys)} ids, {duplicates} duplicates (at-least-once); {gap}")
    assert sorted(keys) == list(range(EVENTS)), "every event id on the predictions topic"
    assert sorted(clean["topic_keys"]) == list(range(EVENTS))
