"""Delayed feedback: fake_negative vs wait_window vs an oracle, on the built-in stream with delayed clicks.

    python bench/feedback.py                          # 20,000 impressions, 50 per event-time second
    python bench/feedback.py --events 100000 --model deepfm

Starts a local broker (tansu) and produces the delayed stream once (``produce_delayed``: impressions
without label, clicks delayed by the Chapelle-shaped mixture scaled by ``--delay-scale``, both topics
in event-time order, end ticks). Then three runs of ``jobs/click_feedback.yaml``:

- ``wait_window`` and ``fake_negative``: the feedback job; quality = the serving scores against the
  settled labels (``RUN_DIR/feedback.jsonl``: AUC, log loss, calibration = mean score / observed rate);
- ``oracle``: the same impressions with their settled label inside (1 iff the click came within the
  window), no feedback section: every label arrives with its impression, and the prequential score
  (made before the model trained on the event) is the serving score.

Throughput: the join's rows/s alone (:class:`~flinkdl.feedback.join.JoinCore`, no Flink), each run's
impressions per second of wall time (first to last settled), and the oracle's trained events/s (the
trainer's throughput on the same path without the join). Also the bytes of one pending impression's
state. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _last(path: Path) -> dict | None:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else None


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def join_core_rows_per_s(n: int = 20_000) -> tuple[float, int]:
    """Impressions + clicks + window timers through :class:`JoinCore` alone; bytes of one pending state."""
    from flinkdl.config.feedback import DelayConfig, FeedbackConfig
    from flinkdl.devtools.produce import encode
    from flinkdl.feedback.join import JoinCore
    from flinkdl.sources.delayed import DelayedStream
    from flinkdl.sources.generator import ClickStream

    imp, clicks = DelayedStream(ClickStream(), DelayConfig()).batch(0, n)
    msgs = encode(imp, "json")
    core = JoinCore(FeedbackConfig(topic="f", window_s=60), "label")
    clicked = set(clicks.column("event_id").to_pylist())
    t0 = time.perf_counter()
    rows = 0
    size = 0
    for i, m in enumerate(msgs):
        step = core.impression(None, m, i, 0)
        rows += 1
        st = step.state
        if i == 0:
            size = len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))
        if i in clicked:
            st = core.feedback(st, True, i + 5, 0).state
            rows += 1
        core.timer(st, i + 60_000)
    return rows / (time.perf_counter() - t0), size


def run(name: str, bootstrap: str, topic: str, tmp: Path, args: argparse.Namespace, expect_trained: int,
        feedback: dict | None) -> dict:
    run_dir = tmp / name
    sets = {"source.kafka.bootstrap_servers": bootstrap, "source.kafka.topic": topic,
            "source.kafka.group_id": f"bench-{name}", "source.kafka.starting_offsets": "earliest",
            "job.run_dir": run_dir, "model.name": args.model, "job.report_every_s": 1}
    if feedback is None:
        sets["feedback"] = "null"
    else:
        sets.update({f"feedback.{k}": v for k, v in feedback.items()})
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_feedback.yaml",
           *(x for k, v in sets.items() for x in ("--set", f"{k}={v}"))]
    fb_log, metrics = run_dir / "feedback.jsonl", run_dir / "metrics.jsonl"
    t0 = time.time()
    with open(tmp / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            while True:
                m, f = _last(metrics) or {}, _last(fb_log) or {}
                done = m.get("events_trained", 0) >= expect_trained
                if feedback is not None:
                    done = done and f.get("settled", 0) >= args.events
                if done:
                    break
                if proc.poll() is not None or time.time() - t0 > args.timeout_s:
                    raise RuntimeError(f"{name}: no end (rc {proc.poll()}); see {tmp / f'{name}.log'}")
                time.sleep(0.5)
            time.sleep(1.5)  # the settled evaluation's last report
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    m = _last(metrics) or {}
    out = {"events_trained": m.get("events_trained"), "sink_rows_per_s": m.get("rows_per_s"),
           "stream_s": m.get("stream_s")}
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
    args = p.parse_args()

    from flinkdl.config.feedback import DelayConfig
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import produce
    from flinkdl.devtools.produce_feedback import produce_delayed
    from flinkdl.sources.delayed import DelayedStream
    from flinkdl.sources.generator import ClickStream

    core_rps, state_bytes = join_core_rows_per_s()
    print(f"join core alone: {core_rps:,.0f} rows/s; one pending impression: {state_bytes} bytes pickled")
    delay = DelayConfig(scale=args.delay_scale)
    stream = ClickStream(events_per_s=args.events_per_s)
    window_ms = int(args.window_s * 1000)
    with tempfile.TemporaryDirectory() as d, broker.running(Path(d) / "tansu.log") as b:
        tmp = Path(d)
        broker.create_topics(b.bootstrap, ["imp", "clk", "oracle"])
        imps, clicks = produce_delayed(b.bootstrap, "imp", "clk", args.events, 1024, 7, delay,
                                       end_tick_s=3 * args.window_s, events_per_s=args.events_per_s)
        # the oracle: each impression with its settled label (a click within the window)
        ds = DelayedStream(stream, delay)
        attributed = set()
        for kind, batch in ds.events(args.events, 1024):
            if kind == "clicks":
                for i, t in zip(batch.column("event_id").to_pylist(), batch.column("ts").to_pylist(), strict=True):
                    if t - (stream.start_ts_ms + int(i * 1000 / args.events_per_s)) <= window_ms:
                        attributed.add(i)
        import pyarrow as pa

        def labelled():
            for kind, batch in ds.events(args.events, 1024):
                if kind == "impressions":
                    ids = batch.column("event_id").to_pylist()
                    yield batch.append_column("label", pa.array([int(i in attributed) for i in ids], pa.int64()))

        produce(b.bootstrap, "oracle", labelled(), "json", progress=False)
        print(f"produced {imps:,} impressions, {clicks:,} clicks ({len(attributed):,} within the window)")
        common = {"topic": "clk", "window_s": args.window_s, "grace_s": args.window_s, "out_of_orderness_s": 2,
                  "idle_timeout_s": "null", "eval_window_s": args.window_s * 10}
        results = {}
        for strategy in ("wait_window", "fake_negative"):
            expect = args.events + (len(attributed) if strategy == "fake_negative" else 0)
            results[strategy] = run(strategy, b.bootstrap, "imp", tmp, args, expect,
                                    {**common, "strategy": strategy, "group_id": f"bench-{strategy}-fb"})
            print(strategy, json.dumps(results[strategy]))
        results["oracle"] = run("oracle", b.bootstrap, "oracle", tmp, args, args.events, None)
        print("oracle", json.dumps(results["oracle"]))
    wait, fn, oracle = results["wait_window"], results["fake_negative"], results["oracle"]

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    final = {
        "bench": "feedback", "events": args.events, "model": args.model, "window_s": args.window_s,
        "attributed_rate": len(attributed) / args.events, "load_avg_1m": os.getloadavg()[0],
        "join_core_rows_per_s": core_rps, "state_bytes_per_pending": state_bytes,
        "fake_negative": fn, "wait_window": wait, "oracle": oracle,
        "fn_logloss_minus_wait": diff(fn["logloss"], wait["logloss"]),
        "fn_calibration_error": None if fn["calibration"] is None else fn["calibration"] - 1.0,
        "auc_gap_to_oracle": {"fake_negative": diff(oracle["auc"], fn["auc"]),
                              "wait_window": diff(oracle["auc"], wait["auc"])},
        "join_vs_trainer": None if not (fn.get("impressions_per_s") and oracle.get("trainer_events_per_s"))
        else fn["impressions_per_s"] / oracle["trainer_events_per_s"],
    }
    print(json.dumps(final))


if __name__ == "__main__":
    main()
