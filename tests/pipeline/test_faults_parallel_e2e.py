"""The fault matrix at parallelism 2 (exactly-once, docs/EXACTLY_ONCE.md): each run ends as an uncrashed
p=2 run does, the one reference run of this module (``clean``).

Every run trains the fault stream (tests/faults.py) at ``job.parallelism=2`` against a sharded PS of two
server processes. The generator runs go to a standalone cluster of two TaskManager processes, one slot
each (so each runs one trainer subtask), in synchronous steps (``parallel.sync_steps``: rank 0 writes the
model, flinkdl/parallel/restore.py restores every rank to one version); each is killed with SIGKILL a
third into the stream:

- ``taskmanager``: one TaskManager (a new one joins; Flink restores the last checkpoint, the trainers agree
  on the earliest anchor, rank 0 rolls the PS back to it, and each re-trains from there);
- ``worker``: the TF worker of one subtask (its trainer starts another; the other rank's worker times out
  of its step, and both trainers restore in place as above);
- ``ps-shard``: shard 0 of the PS (it coordinates, holds the dense variables and the rendezvous), started
  again a second later: every worker's call fails and both trainers restore in place.

Synchronous steps replay deterministically, so each of these runs ends *equal* to the clean run: AUC
within ``faults.AUC_TOL`` and every PS row and dense variable within ``faults.ROW_TOL``.

The broker run reads the same events as Arrow messages from a live topic of a durable local broker
(``flinkdl run`` at p=2, the Python Kafka reader), also in synchronous steps: take ``g`` (message ``g`` of
the topic, read by offset: flinkdl/parallel/kafka_plan.py) goes to rank ``g % 2``, so the rounds do not
depend on poll timing. The broker is killed and restarted a second later, and the run is held to the
same bounds against an uncrashed synchronous Kafka run (``clean_kafka``)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flinkdl.cluster.standalone import LocalCluster
from flinkdl.devtools import broker
from flinkdl.devtools.net import free_port
from flinkdl.devtools.produce import generator_batches, produce, read_topic
from tests import faults
from tests.ps.conftest import ShardedPs

pytestmark = pytest.mark.e2e

#: p=2 in synchronous steps: a step that waits 10 s for the other rank fails (a dead worker is found fast);
#: each rank takes half of every batch, so its trainer is paced at half the rate; versions kept for restores
P2_SYNC = ["job.parallelism=2", "ps.retain=20", "parallel.sync_steps=true", "parallel.timeout_s=10",
           f"worker.max_rows_per_s={faults.RATE // 2}"]

Fault = Callable[[LocalCluster, str, Path, ShardedPs], dict]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), f"http://127.0.0.1:{free_port()}", slots=1,
                     rpc_port=free_port())
    try:
        c.start(taskmanagers=2)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("p2-faults")


@pytest.fixture(scope="module")
def clean(cluster, base) -> dict:
    return _run(cluster, base, "clean", None)


def kill_taskmanager(cluster: LocalCluster, job: str, run_dir: Path, ps: ShardedPs) -> dict:
    faults.wait_predictions(run_dir)
    assert cluster.rest.last_checkpoint(job) is not None, "no completed checkpoint to restore"
    faults.assert_mid_stream(run_dir)
    killed = cluster.taskmanager_pids()[0]
    os.kill(killed, signal.SIGKILL)
    cluster.add_taskmanager()
    return {"killed": killed}


def kill_worker(cluster: LocalCluster, job: str, run_dir: Path, ps: ShardedPs) -> dict:
    faults.wait_predictions(run_dir)
    workers = faults.worker_pids(run_dir)
    assert len(workers) == 2, workers
    faults.assert_mid_stream(run_dir)
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    return {"killed": killed, "new_worker": faults.worker_pid(run_dir, timeout=120, not_pid=workers)}


def kill_ps_shard(cluster: LocalCluster, job: str, run_dir: Path, ps: ShardedPs) -> dict:
    faults.wait_predictions(run_dir)
    faults.assert_mid_stream(run_dir)
    shard = ps.shards[0]
    killed = shard.proc.pid
    shard.kill9()
    time.sleep(1.0)
    shard.start()
    return {"killed": killed, "restarted": shard.proc.pid}


def _run(cluster: LocalCluster, base: Path, name: str, fault: Fault | None, mode: list[str] = P2_SYNC) -> dict:
    run_dir, ps = base / name, ShardedPs(2, base / f"{name}-ps")
    try:
        job = cluster.submit(faults.ROOT / "jobs" / "click_stream.yaml",
                             [*faults.overrides(run_dir, ps.address), *mode])
        injected = fault(cluster, job, run_dir, ps) if fault else {}
        assert cluster.rest.wait_for_state(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=400) == "FINISHED"
        summary = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        out = faults.outcome(run_dir, ps.address, summary)
    finally:
        ps.stop()
    return {**out, "injected": injected, "restarts": cluster.rest.job(job).get("status-counts")}


def _gaps(run: dict, clean: dict, top: int = 3) -> list[str]:
    """The ``top`` largest gaps to the clean run: ``name gap/(the clean run's largest value)``."""
    pairs = {n: (rows[np.argsort(ids)], clean["tables"][n][1][np.argsort(clean["tables"][n][0])])
             for n, (ids, rows) in run["tables"].items()}
    pairs.update({n: (v, clean["dense"][n]) for n, v in run["dense"].items()})
    gaps = sorted(((float(np.abs(a - b).max()), float(np.abs(b).max()), n) for n, (a, b) in pairs.items()
                   if np.size(b)), reverse=True)
    return [f"{n} {g:.3g}/{v:.3g}" for g, v, n in gaps[:top]]


def check_p2(run: dict, clean: dict, label: str) -> None:
    """Every event answered once and trained once, the clean run's PS rows; AUC within ``faults.AUC_TOL`` and
    row values within ``faults.ROW_TOL`` (synchronous steps replay deterministically)."""
    s, c = run["summary"], clean["summary"]
    ids, counts = np.unique(run["ids"], return_counts=True)
    for name, (ids_run, _) in run["tables"].items():  # every row a batch touched exists, none more
        assert np.array_equal(np.sort(ids_run), np.sort(clean["tables"][name][0])), name
    assert run["tables"].keys() == clean["tables"].keys()
    gap = faults._row_gap(run, clean)
    print(f"\np=2 {label}: auc {s['auc']:.6f} (clean {c['auc']:.6f}) largest PS value gap {gap:.3g}, "
          f"row gaps {_gaps(run, clean)} {run.get('injected')} restarts {run.get('restarts')}")
    assert s["events_in"] == s["events_trained"] == c["events_trained"] == faults.EVENTS
    assert np.array_equal(ids, np.arange(faults.EVENTS)) and (counts == 1).all(), "every event answered once"
    assert abs(s["auc"] - c["auc"]) < faults.AUC_TOL
    assert gap <= faults.ROW_TOL


@pytest.mark.parametrize("fault", [kill_taskmanager, kill_worker, kill_ps_shard],
                         ids=["taskmanager", "worker", "ps-shard"])
def test_kill_9_at_parallelism_2_recovers_exactly_once(cluster, base, clean, fault):
    run = _run(cluster, base, fault.__name__, fault)
    check_p2(run, clean, fault.__name__)


@pytest.fixture(scope="module")
def durable_broker(tmp_path_factory):
    with broker.running(durable_dir=tmp_path_factory.mktemp("durable-broker")) as b:
        yield b


def _kafka_run(b: broker.Broker, base: Path, name: str,
               fault: Callable[[Path, faults.Job], object] | None) -> tuple[dict, Counter]:
    """The fault stream as Arrow messages on a live topic of ``b``, trained by ``flinkdl run`` at p=2 in
    synchronous steps, ``fault(run_dir, job)`` injected mid-stream; the run's outcome and the keys on its
    predictions topic."""
    run_dir, ps = base / name, ShardedPs(2, base / f"{name}-ps")
    topics = [f"clicks-{name}", f"preds-{name}", f"dead-{name}"]
    broker.create_topics(b.bootstrap, topics)
    producer = threading.Thread(target=produce, args=(b.bootstrap, topics[0],
                                                      generator_batches(faults.EVENTS, batch_size=faults.BATCH),
                                                      "arrow"),
                                kwargs={"rate": faults.RATE, "progress": False})
    producer.start()
    sets = [*faults.overrides(run_dir, ps.address, generator=False), *P2_SYNC,
            f"source.kafka.bootstrap_servers={b.bootstrap}", f"source.kafka.topic={topics[0]}",
            "source.kafka.format=arrow", f"source.kafka.group_id=g-{name}",
            f"source.kafka.dead_letter_topic={topics[2]}", f"sinks.kafka.topic={topics[1]}"]
    job = faults.Job(["run", "jobs/click_stream_kafka.yaml", *(a for o in sets for a in ("--set", o)),
                      "--max-events", str(faults.EVENTS), "--summary", str(run_dir / "summary.json")],
                     base / f"{name}.log")
    try:
        if fault is not None:
            fault(run_dir, job)
        job.wait(500)
        producer.join(60)
        run = faults.outcome(run_dir, ps.address, json.loads((run_dir / "summary.json").read_text()))
    finally:
        job.kill()
        ps.stop()
    keys = Counter(int(m.key()) for m in read_topic(b.bootstrap, topics[1], expect=faults.EVENTS))
    return run, keys


def test_broker_killed_at_parallelism_2(durable_broker, base):
    clean_kafka, _ = _kafka_run(durable_broker, base, "clean-kafka", None)
    run, keys = _kafka_run(durable_broker, base, "broker-killed",
                           lambda run_dir, job: faults.bounce_broker(durable_broker, run_dir, job))
    check_p2(run, clean_kafka, "broker")
    print(f"predictions topic: {len(keys)} ids, {sum(keys.values()) - len(keys)} duplicates (at-least-once)")
    assert sorted(keys) == list(range(faults.EVENTS)), "every event id on the predictions topic"
