"""Kafka input → prediction latency of the main Kafka job, bulk settings vs ``job.max_latency_ms``.

    python bench/latency.py                          # 5,000 ev/s for 100 s: bulk, then max_latency_ms=50
    python bench/latency.py --rate 30000 --modes 50

Starts a local broker (tansu), then per mode launches ``flinkdl run jobs/click_stream_kafka.yaml``
(DeepFM, training as it scores) as a subprocess and at the same moment starts producing the
built-in stream into a fresh topic at a fixed ``--rate`` (paced every 10 ms). When the job has
seen every event, both topics are read back and matched by event id: latency = the prediction
message's Kafka timestamp − the input message's (both CreateTime). Reported: p50/p95/p99/max over
the steady state (input produced from ``--skip-s`` after the first prediction on), the time from
launching ``flinkdl run`` to the first prediction on the topic, the job's events/s, and the load
average. Modes: ``bulk`` (max_latency_ms null, today's settings) or a number (max_latency_ms).
The last line is JSON: every mode and the ratios of each mode's percentiles to bulk's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def measure(bootstrap: str, tmp: Path, mode: str, args: argparse.Namespace) -> dict:
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import generator_batches, produce, read_topic

    total = int(args.rate * args.duration_s)
    name = f"{mode}-{int(args.rate)}"
    broker.create_topics(bootstrap, [f"in-{name}", f"out-{name}"])
    sets = [*args.set, f"job.run_dir={tmp}/{name}", f"source.kafka.bootstrap_servers={bootstrap}",
            f"source.kafka.topic=in-{name}", f"source.kafka.group_id=bench-{name}", f"sinks.kafka.topic=out-{name}"]
    if mode != "bulk":
        sets.append(f"job.max_latency_ms={mode}")
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", args.config, "--max-events", str(total),
           "--summary", str(tmp / f"{name}.json"), *(x for s in sets for x in ("--set", s))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load0 = os.getloadavg()
    launch_ms = time.time() * 1000
    with open(tmp / f"{name}.log", "w") as log:
        job = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        producer = threading.Thread(target=produce, daemon=True, args=(
            bootstrap, f"in-{name}", generator_batches(total, max(1, int(args.rate // 100)))),
            kwargs={"fmt": "csv", "rate": args.rate, "progress": False,
                    "properties": {"linger.ms": args.linger_ms}})
        producer.start()
        try:
            rc = job.wait(timeout=args.duration_s + 300)
        finally:
            if job.poll() is None:
                job.kill()
        producer.join(60)
    load1 = os.getloadavg()
    if rc != 0:
        text = (tmp / f"{name}.log").read_text()
        causes = "\n".join(line for line in text.splitlines() if "Caused by" in line or line.startswith("[ "))
        sys.exit(f"{mode}: flinkdl run exited {rc}:\n{causes[-4000:]}\n{text[-3000:]}")
    summary = json.loads((tmp / f"{name}.json").read_text())
    ins = {m.key(): m.timestamp()[1] for m in read_topic(bootstrap, f"in-{name}", expect=total, idle_s=5)}
    outs = [(m.key(), m.timestamp()[1]) for m in read_topic(bootstrap, f"out-{name}", expect=total, idle_s=5)]
    first_out = min(t for _, t in outs)
    steady_from = first_out + args.skip_s * 1000
    lat = np.array([t - ins[k] for k, t in outs if k in ins and ins[k] >= steady_from], dtype=np.float64)
    if not lat.size:
        sys.exit(f"{mode}: no steady-state events (first prediction {first_out - launch_ms:.0f} ms after launch)")
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    # p50/p99 per 10 s of input time after launch: shows when the start-up backlog is drained
    rel = np.array([(ins[k] - launch_ms) / 1000 for k, _ in outs if k in ins])
    every = np.array([t - ins[k] for k, t in outs if k in ins], dtype=np.float64)
    timeline = [[int(s0), *(float(x) for x in np.percentile(every[sel], [50, 99]))]
                for s0 in range(0, int(rel.max()) + 1, 10) if (sel := (rel >= s0) & (rel < s0 + 10)).any()]
    return {"mode": mode, "rate": args.rate, "events": total, "predictions": len(outs),
            "steady_events": int(lat.size), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "max_ms": float(lat.max()), "first_prediction_s": (first_out - launch_ms) / 1000,
            "job_rows_per_s": summary.get("rows_per_s"), "timeline_s_p50_p99": timeline,
            "load_avg_before": load0, "load_avg_after": load1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="jobs/click_stream_kafka.yaml")
    p.add_argument("--rate", type=float, default=5000.0, help="events/s produced")
    p.add_argument("--duration-s", type=float, default=100.0, help="seconds of producing (from the launch)")
    p.add_argument("--skip-s", type=float, default=30.0, help="steady state: from this long after the first "
                   "prediction")
    p.add_argument("--modes", nargs="+", default=["bulk", "50"], help="'bulk' or a job.max_latency_ms value")
    p.add_argument("--linger-ms", type=int, default=5, help="the input producer's linger.ms")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()

    from flinkdl.devtools import broker

    rows = []
    with tempfile.TemporaryDirectory() as tmp, broker.running(Path(tmp) / "tansu.log") as b:
        for mode in args.modes:
            rows.append(measure(b.bootstrap, Path(tmp), mode, args))
            r = rows[-1]
            print(f"{mode:>6} @ {r['rate']:,.0f} ev/s: p50 {r['p50_ms']:.0f} ms  p95 {r['p95_ms']:.0f}  "
                  f"p99 {r['p99_ms']:.0f}  max {r['max_ms']:.0f}  ({r['steady_events']:,} steady events)  "
                  f"first prediction {r['first_prediction_s']:.1f} s after launch  job {r['job_rows_per_s']} ev/s  "
                  f"load {r['load_avg_before'][0]:.2f}→{r['load_avg_after'][0]:.2f}\n"
                  f"        p50/p99 per 10 s after launch: {r['timeline_s_p50_p99']}", flush=True)
    base = next((r for r in rows if r["mode"] == "bulk"), None)
    ratios = {r["mode"]: {q: r[q] / base[q] for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
              for r in rows if base is not None and r is not base}
    print(json.dumps({"runs": rows, "ratio_to_bulk": ratios}))


if __name__ == "__main__":
    main()
