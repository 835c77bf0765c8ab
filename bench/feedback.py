"""Delayed feedback: fake_negative vs wait_window vs an oracle, on the built-in stream with delayed clicks.

    python bench/feedback.py                          # 20,000 impressions, 50 per event-time second
    python bench/feedback.py --events 100000 --model deepfm
    python bench/feedback.py --events 30000 --throughput-only   # the join's cost vs the trainer's

Starts a local broker (tansu) and produces the delayed stream once (``produce_delayed``: impressions
without label, clicks delayed by the Chapelle-shaped mixture scaled by ``--delay-scale``, both topics
in event-time order, end ticks). Then the runs of ``jobs/click_feedback.yaml``:

- ``wait_window`` and ``fake_negative``: the feedback job with processing-time batches (set here: the
  job's default is event-time ones; ``--event-time-batches``: event-time for every feedback run);
  quality = the serving scores against the
  settled labels (``RUN_DIR/feedback.jsonl``: AUC, log loss, calibration = mean score / observed rate);
- ``oracle``: the *same feedback job* (same join, batching, model, evaluation) on the same
  impressions and a click topic ``clk0`` in which every click that settles positive in the delayed
  runs (within the window) carries its impression's time (delay 0), with ``wait_window`` and a 1 ms
  window (no grace): each impression is trained once with its settled label as soon as the
  watermark allows (``out_of_orderness_s`` after it), and settles to the same label as in the
  delayed runs; ``oracle_fn`` the same under ``fake_negative`` (each positive trained twice, FN
  calibration): the delayed fake_negative run minus ``oracle_fn`` is the cost of the delay alone;
- ``fake_negative_et``: ``fake_negative`` with ``feedback.event_time_batches: true`` (sorted
  event-time batches, the same in every run): ``event_time_vs_processing`` = its impressions/s and
  CPU µs per trained event over ``fake_negative``'s (``--et-batch-ms`` its window: an event-time
  window holds ``--events-per-s`` x batch_ms impressions, few in a replay, coalesced into training batches of
  ``feedback.coalesce_rows`` / ``coalesce_span_s``: ``--et-set KEY=VALUE``); ``--event-time-batches`` turns them on for
  every feedback run; with ``--repeat 2`` the runs of each name then train the same model);
- ``es_dfm`` (only when ``--runs`` names it; docs/FEEDBACK.md): ``fake_negative``'s rows weighted by
  ES-DFM's importance weights
  (``feedback.es_dfm.elapsed_s`` 0), no FN calibration; its ``metrics.jsonl`` counts each
  impression twice as labelled (its fake negative, then its positive or its *real negative*, a
  row the elapsed-time model learns from and the main model does not); ``es_dfm_et`` (only when
  named): the same with ``fake_negative_et``'s event-time batches (the job file's mode);
- ``trainer``: the impressions with their settled label inside, no feedback section (the plain
  Kafka path, its own batching, prequential scores from ``metrics.jsonl``): the trainer's
  throughput (its AUC is *not* like for like: larger batches, fewer steps; it was the oracle before).

Throughput: the join alone (the job's SQL over both topics read to their end into a blackhole
sink, no Python; against a scan that reads the same topics and extracts their fields as the join
does, without the joins), each run's impressions per
second of wall time (first to last settled), and the ``trainer`` run's trained events/s (the
trainer's throughput on the same path without the join); ``join_vs_trainer`` = join alone (impressions over
the wall time the joins add to the scan, so job start and Kafka reads are not counted) / trainer,
``job_vs_trainer`` = the whole fake_negative job / trainer. The SQL runs measure the join with
the ``clicks`` join (``feedback.count_clicks: true``), without it (the default) and that at
``feedback.sql_parallelism: 2``; each gives CPU µs per impression over the scan (this process and
its JVM; also the whole SQL job's, with its start and the reads), against the trainer's CPU µs
per trained event (the trainer job's process tree once training had started): ``cpu_vs_trainer``
> 1 means the join costs less CPU per event than the trainer. ``--throughput-only`` skips the
strategy and oracle runs, ``--quality-only`` the SQL runs; ``--repeat N`` runs the strategies,
oracles and trainer N times in turn and reports each one's mean AUC (``auc_runs``, ``auc_spread``);
``--runs`` picks the runs (comma-separated names).
Also an estimate of the bytes of one pending impression's state. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from flinkdl.sources.delayed import DelayedStream


def _last(path: Path) -> dict | None:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else None


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its descendants so far."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def sql_join_only(bootstrap: str, imps: int, clicks: int, args: argparse.Namespace, join: bool,
                  name: str, extra: tuple[str, ...] = (), sql_parallelism: int = 1) -> dict:
    """The feedback job's SQL (:mod:`flinkdl.pipeline.feedback_sql`) over both topics, read to their
    end, into a blackhole sink: no Python. ``join=False`` scans the same views without the joins
    (the baseline: job start, Kafka reads, JSON extraction). Wall time from submit to finish, and
    the CPU time of this process and its JVM over the same span."""
    from flinkdl.config.loader import load_config
    from flinkdl.pipeline.feedback_job import join_table, register_inputs, topic_ddl
    from flinkdl.pipeline.job import make_env

    group = f"bench-sql-{name}"
    cfg = load_config(ROOT / "jobs/click_feedback.yaml", [
        f"source.kafka.bootstrap_servers={bootstrap}", "source.kafka.topic=imp", f"source.kafka.group_id={group}",
        "source.kafka.starting_offsets=earliest", "feedback.topic=clk", f"feedback.window_s={args.window_s}",
        f"feedback.grace_s={args.window_s}", "feedback.out_of_orderness_s=2", "feedback.idle_timeout_s=null",
        "job.parallelism=1", f"feedback.sql_parallelism={sql_parallelism}", *extra])
    from pyflink.table import StreamTableEnvironment

    tenv = StreamTableEnvironment.create(make_env(cfg))
    fb, k = cfg.feedback, cfg.source.kafka
    assert fb is not None and k is not None
    bounded = ",\n  'scan.bounded.mode' = 'latest-offset')"  # read to the end: the watermark then ends every window
    tenv.execute_sql(topic_ddl(k, "fb_impressions", fb)[:-1] + bounded)
    tenv.execute_sql(topic_ddl(k.model_copy(update={"topic": "clk", "group_id": f"{group}-fb"}), "fb_feedback",
                               fb)[:-1] + bounded)
    tenv.execute_sql("CREATE TEMPORARY TABLE sink (chan INT, payload STRING) WITH ('connector' = 'blackhole')")
    if join:
        table = join_table(tenv, fb, "label", "fb_impressions", "fb_feedback")
    else:  # each topic read and its fields extracted (as the join's inputs), no join
        register_inputs(tenv, fb, "label", "fb_impressions", "fb_feedback")
        table = tenv.sql_query("SELECT 0 AS chan, body AS payload FROM fb_imp_in UNION ALL "
                               "SELECT 1 AS chan, v AS payload FROM fb_fb_in")
    t0, cpu0 = time.perf_counter(), tree_cpu_s(os.getpid())
    table.execute_insert("sink").wait()
    wall, cpu = time.perf_counter() - t0, tree_cpu_s(os.getpid()) - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "impressions_per_s": imps / wall, "input_rows_per_s": (imps + clicks) / wall}


def state_bytes(n: int = 2000) -> int:
    """Bytes of one pending impression's join state: its JSON body (without label) as the train
    join keeps it, plus id and two times (an estimate of Flink's RowData; the optional clicks join
    keeps another id and two times)."""
    from flinkdl.config.feedback import DelayConfig
    from flinkdl.devtools.produce import encode
    from flinkdl.sources.delayed import DelayedStream
    from flinkdl.sources.generator import ClickStream

    imp, _ = DelayedStream(ClickStream(), DelayConfig()).batch(0, n)
    msgs = encode(imp, "json")
    return int(sum(len(m) for m in msgs) / len(msgs)) + 3 * 8


def produce_oracle_topics(bootstrap: str, ds: DelayedStream, args: argparse.Namespace) -> set[int]:
    """The ids whose click came within the window (settled 1); topic ``clk0``: a click for each at its
    impression's time (delay 0), then an end tick; topic ``labelled``: the impressions with that label."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from flinkdl.devtools.produce import AckedProducer, produce
    from flinkdl.devtools.produce_feedback import end_ticks
    from flinkdl.sources.delayed import CLICK_SCHEMA

    imp_ts: dict[int, int] = {}
    attributed: set[int] = set()
    for kind, batch in ds.events(args.events, 1024):
        ids, ts = batch.column("event_id").to_pylist(), batch.column("ts").to_pylist()
        if kind == "impressions":
            imp_ts.update(zip(ids, ts, strict=True))
        else:
            attributed.update(i for i, t in zip(ids, ts, strict=True) if t - imp_ts[i] <= args.window_s * 1000)

    def impressions(label: bool) -> Iterator[pa.RecordBatch]:
        for kind, batch in ds.events(args.events, 1024):
            if kind == "impressions":
                hit = pa.array([int(i in attributed) for i in batch.column("event_id").to_pylist()], pa.int64())
                if label:
                    yield batch.append_column("label", hit)
                else:
                    mask = pc.equal(hit, 1)
                    yield pa.RecordBatch.from_arrays(
                        [batch.column("event_id").filter(mask), batch.column("ts").filter(mask),
                         hit.filter(mask)], schema=CLICK_SCHEMA)

    produce(bootstrap, "labelled", impressions(True), "json", progress=False)
    produce(bootstrap, "clk0", impressions(False), "json", progress=False)
    p = AckedProducer(bootstrap)
    for to, tick in end_ticks(max(imp_ts.values()) + int((4 * args.window_s + 10) * 1000), "imp", "clk0"):
        if to == "clk0":
            p.send(to, tick)
    p.flush(60)
    return attributed


def run(name: str, bootstrap: str, topic: str, tmp: Path, args: argparse.Namespace, expect_trained: int,
        feedback: dict | None) -> dict:
    run_dir = tmp / name
    sets = {"source.kafka.bootstrap_servers": bootstrap, "source.kafka.topic": topic,
            "source.kafka.group_id": f"bench-{name}", "source.kafka.starting_offsets": "earliest",
            "job.run_dir": run_dir, "model.name": args.model, "job.report_every_s": 0.2}
    if feedback is None:
        sets["feedback"] = "null"
    else:
        sets.update({f"feedback.{k}": v for k, v in feedback.items()})
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_feedback.yaml",
           *(x for k, v in sets.items() for x in ("--set", f"{k}={v}"))]
    fb_log, metrics = run_dir / "feedback.jsonl", run_dir / "metrics.jsonl"
    t0, first = time.time(), None  # first: (cpu_s, events_trained) once training has started
    with open(tmp / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            while True:
                m, f = _last(metrics) or {}, _last(fb_log) or {}
                if first is None and m.get("events_trained", 0) > 0:
                    first = (tree_cpu_s(proc.pid), m["events_trained"])
                done = m.get("events_trained", 0) >= expect_trained
                if feedback is not None:
                    done = done and f.get("settled", 0) >= args.events
                if done:
                    break
                if proc.poll() is not None or time.time() - t0 > args.timeout_s:
                    raise RuntimeError(f"{name}: no end (rc {proc.poll()}); see {tmp / f'{name}.log'}")
                time.sleep(0.1)
            time.sleep(1.5)  # the settled evaluation's last report
            m = _last(metrics) or {}
            steady = None if first is None else (tree_cpu_s(proc.pid) - first[0], m["events_trained"] - first[1])
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    m = _last(metrics) or {}
    out = {"events_trained": m.get("events_trained"), "sink_rows_per_s": m.get("rows_per_s"),
           "stream_s": m.get("stream_s"),  # CPU µs per event trained once training had started (whole job)
           "cpu_us_per_trained": steady[0] / steady[1] * 1e6 if steady and steady[1] > 0 else None}
    if feedback is None:
        out.update(auc=m.get("auc"), logloss=m.get("logloss"), calibration=m.get("calibration"),
                   trainer_events_per_s=(m["events_trained"] / m["stream_s"]) if m.get("stream_s") else None)
        return out
    lines = _lines(fb_log)
    first = next((x["t"] for x in lines if x.get("served")), None)
    settled_t = next((x["t"] for x in lines if x.get("settled", 0) >= args.events), None)
    total = lines[-1]["total"]
    out.update(auc=total["auc"], logloss=total["logloss"], calibration=total["calibration"],
               mean_score=total["mean_score"], observed_rate=total["observed_rate"], join=lines[-1]["join"],
               impressions_per_s=args.events / (settled_t - first) if first and settled_t and settled_t > first
               else None)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--events-per-s", type=float, default=50.0, help="event-time rate of impressions")
    p.add_argument("--delay-scale", type=float, default=1 / 60)
    p.add_argument("--window-s", type=float, default=60.0, help="attribution window (event time)")
    p.add_argument("--model", default="lr")
    p.add_argument("--timeout-s", type=float, default=900.0)
    p.add_argument("--throughput-only", action="store_true",
                   help="the SQL runs and the trainer only, not the strategies and oracles")
    p.add_argument("--quality-only", action="store_true", help="no SQL-alone runs (the join's throughput)")
    p.add_argument("--repeat", type=int, default=1, help="run the strategies, oracles and trainer this many "
                   "times in turn; AUC = the mean (auc_runs: each run's)")
    p.add_argument("--event-time-batches", action="store_true",
                   help="every feedback run with feedback.event_time_batches: true (deterministic batches)")
    p.add_argument("--et-batch-ms", type=int, default=None, help="feedback.batch_ms of fake_negative_et (an "
                   "event-time window holds --events-per-s x batch_ms rows; default: the job's)")
    p.add_argument("--et-set", action="append", default=[], metavar="KEY=VALUE", help="a feedback.KEY of "
                   "fake_negative_et (repeatable), e.g. coalesce_rows=1: one training batch per event-time window")
    p.add_argument("--runs", default="wait_window,fake_negative,fake_negative_et,oracle,oracle_fn,trainer",
                   help="comma-separated: which of the runs to do (e.g. fake_negative with --repeat 2: determinism; "
                   "es_dfm only when named)")
    args = p.parse_args()
    chosen = set(args.runs.split(","))

    from flinkdl.config.feedback import DelayConfig
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce_feedback import produce_delayed
    from flinkdl.sources.delayed import DelayedStream
    from flinkdl.sources.generator import ClickStream

    pending_bytes = state_bytes()
    print(f"one pending impression: ~{pending_bytes} bytes of join state")
    delay = DelayConfig(scale=args.delay_scale)
    stream = ClickStream(events_per_s=args.events_per_s)
    with tempfile.TemporaryDirectory() as d, broker.running(Path(d) / "tansu.log") as b:
        tmp = Path(d)
        broker.create_topics(b.bootstrap, ["imp", "clk", "clk0", "labelled"])
        imps, clicks = produce_delayed(b.bootstrap, "imp", "clk", args.events, 1024, 7, delay,
                                       end_tick_s=4 * args.window_s + 10, events_per_s=args.events_per_s)
        attributed = produce_oracle_topics(b.bootstrap, DelayedStream(stream, delay), args)
        print(f"produced {imps:,} impressions, {clicks:,} clicks ({len(attributed):,} within the window)")
        # the first SQL job warms the JVM (JIT) up: a join first, the baseline is the scan after the joins
        with_clicks, no_clicks = ("feedback.count_clicks=true",), ("feedback.count_clicks=false",)
        # the warm-up is a join: after a warm-up scan the first join cost ~40 % more CPU than the next (the JIT)
        variants = (("warm-up", True, (), 1), ("join", True, with_clicks, 1), ("join_no_clicks", True, no_clicks, 1),
                    ("join_no_clicks_p2", True, no_clicks, 2), ("scan", False, (), 1))
        sql = {} if args.quality_only else {name: sql_join_only(b.bootstrap, imps, clicks, args, join, name, extra, par)
               for name, join, extra, par in variants}
        print("SQL alone (blackhole sink):", json.dumps(sql))
        common = {"topic": "clk", "window_s": args.window_s, "grace_s": args.window_s, "out_of_orderness_s": 2,
                  "idle_timeout_s": "null", "eval_window_s": args.window_s * 10}
        results = {}
        oracle = {"topic": "clk0", "window_s": 0.001, "grace_s": 0}  # delay 0: labels with their impressions
        # fake_negative & co: processing-time batches (the job's default is event-time), unless asked
        common["event_time_batches"] = "true" if args.event_time_batches else "false"
        et = {"strategy": "fake_negative", "event_time_batches": "true"}  # its cost against fake_negative's
        if args.et_batch_ms:
            et["batch_ms"] = args.et_batch_ms
        et.update(kv.split("=", 1) for kv in args.et_set)
        runs = (("wait_window", {}, 0), ("fake_negative", {}, 1), ("fake_negative_et", et, 1),
                ("oracle", {**oracle, "strategy": "wait_window"}, 0),
                ("oracle_fn", {**oracle, "strategy": "fake_negative"}, 1), ("es_dfm", {}, 1),
                ("es_dfm_et", {**et, "strategy": "es_dfm"}, 1))
        aucs: dict[str, list[float]] = {}
        for rep in range(args.repeat):  # the runs in turn, so a drift of the load touches each alike
            todo = [(name, sets, twice) for name, sets, twice in runs if not args.throughput_only]
            for name, sets, twice in [x for x in [*todo, ("trainer", None, 0)] if x[0] in chosen]:
                tag = name if rep == 0 else f"{name}-{rep}"
                if sets is None:
                    out = run(tag, b.bootstrap, "labelled", tmp, args, args.events, None)
                else:
                    fb = {**common, "strategy": name, **sets, "group_id": f"bench-{tag}-fb"}
                    # es_dfm: every impression's fake negative, then its positive or its real negative
                    expect = 2 * args.events if fb["strategy"] == "es_dfm" else args.events + twice * len(attributed)
                    out = run(tag, b.bootstrap, "imp", tmp, args, expect, fb)
                print(tag, json.dumps(out))
                results.setdefault(name, out)
                aucs.setdefault(name, []).append(out["auc"])
        for name, values in aucs.items():  # with --repeat: AUC = the mean over the runs, each listed
            if args.repeat > 1 and None not in values:
                results[name].update(auc=sum(values) / len(values), auc_runs=values,
                                     auc_spread=max(values) - min(values))
    empty: dict = {"logloss": None, "calibration": None, "auc": None}
    wait, fn = results.get("wait_window", empty), results.get("fake_negative", empty)
    plain = results.get("trainer", empty)
    oracle, oracle_fn = results.get("oracle", empty), results.get("oracle_fn", empty)
    fn_et = results.get("fake_negative_et", empty)
    es_dfm, es_dfm_et = results.get("es_dfm", empty), results.get("es_dfm_et", empty)
    trainer = plain.get("trainer_events_per_s")
    trainer_cpu_us = plain.get("cpu_us_per_trained")

    def over_scan(name: str) -> dict:
        """What the joins add to reading the topics: impressions/s of wall time, CPU µs per impression."""
        extra_s, extra_cpu = sql[name]["wall_s"] - sql["scan"]["wall_s"], sql[name]["cpu_s"] - sql["scan"]["cpu_s"]
        rate = args.events / extra_s if extra_s > 0 else None
        cpu_us = extra_cpu / args.events * 1e6
        return {"impressions_per_s": rate, "vs_trainer": rate / trainer if rate and trainer else None,
                "cpu_us_per_impression": cpu_us,  # and with job start and the topics' reads:
                "total_cpu_us_per_impression": sql[name]["cpu_s"] / args.events * 1e6,
                "cpu_vs_trainer": trainer_cpu_us / cpu_us if trainer_cpu_us and cpu_us > 0 else None}

    joins = {} if not sql else {name: over_scan(name) for name in ("join", "join_no_clicks", "join_no_clicks_p2")}
    join_rate = joins["join"]["impressions_per_s"] if joins else None
    for name, j in joins.items():
        print(f"{name}: {j['impressions_per_s'] or float('nan'):,.0f} impressions/s over the scan, "
              f"{j['cpu_us_per_impression']:,.1f} CPU µs per impression ({j['total_cpu_us_per_impression']:,.1f} "
              "with job start and reads)")
    print(f"trainer: {trainer or float('nan'):,.0f} events/s, {trainer_cpu_us or float('nan'):,.1f} CPU µs per event")

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if not a or not b else a / b

    final = {
        "bench": "feedback", "events": args.events, "model": args.model, "window_s": args.window_s,
        "attributed_rate": len(attributed) / args.events, "load_avg_1m": os.getloadavg()[0],
        "state_bytes_per_pending": pending_bytes, "sql_scan": sql.get("scan"), "sql_join": sql.get("join"),
        "fake_negative": fn, "wait_window": wait, "oracle": oracle, "oracle_fn": oracle_fn, "trainer": plain,
        "fn_logloss_minus_wait": diff(fn["logloss"], wait["logloss"]),
        "fn_calibration_error": None if fn["calibration"] is None else fn["calibration"] - 1.0,
        "es_dfm": es_dfm, "es_dfm_logloss_minus_wait": diff(es_dfm["logloss"], wait["logloss"]),
        "es_dfm_logloss_vs_fn": ratio(es_dfm["logloss"], fn["logloss"]),
        "es_dfm_calibration_error": None if es_dfm["calibration"] is None else es_dfm["calibration"] - 1.0,
        "auc_gap_to_oracle": {"fake_negative": diff(oracle["auc"], fn["auc"]),
                              "wait_window": diff(oracle["auc"], wait["auc"]),
                              "es_dfm": diff(oracle["auc"], es_dfm["auc"]),
                              "es_dfm_et": diff(oracle["auc"], es_dfm_et["auc"]),
                              "fake_negative_vs_oracle_fn": diff(oracle_fn["auc"], fn["auc"]),
                              "trainer_path": diff(plain["auc"], oracle["auc"])},
        "join_impressions_per_s": join_rate, "joins_over_scan": joins, "trainer_cpu_us_per_event": trainer_cpu_us,
        "join_vs_trainer": None if not (join_rate and trainer) else join_rate / trainer,
        "join_with_startup_vs_trainer": None if not (trainer and sql) else sql["join"]["impressions_per_s"] / trainer,
        "job_vs_trainer": None if not (fn.get("impressions_per_s") and trainer) else fn["impressions_per_s"] / trainer,
        "fake_negative_et": fn_et,  # event-time batches against processing-time ones (fake_negative)
        "es_dfm_et": es_dfm_et, "es_dfm_et_logloss_vs_fn_et": ratio(es_dfm_et["logloss"], fn_et.get("logloss")),
        "es_dfm_et_calibration_error": None if es_dfm_et["calibration"] is None else es_dfm_et["calibration"] - 1.0,
        "event_time_vs_processing": {
            "impressions_per_s": ratio(fn_et.get("impressions_per_s"), fn.get("impressions_per_s")),
            "cpu_us_per_trained": ratio(fn_et.get("cpu_us_per_trained"), fn.get("cpu_us_per_trained")),
            "auc": diff(fn_et["auc"], fn["auc"])},
    }
    print(json.dumps(final))


if __name__ == "__main__":
    main()
