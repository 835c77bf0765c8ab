"""Soak: run the full job for ``--minutes`` and sample each process role's memory every ``--interval`` s.

    python bench/soak.py                          # 30 min, warm-up 5 min, a sample every 10 s
    python bench/soak.py --minutes 3 --warmup 1   # a quick check of the script itself
    python bench/soak.py --kafka                  # Kafka in and out through a local tansu broker

Starts a parameter server (``flinkdl ps serve`` on a free port, versions under OUT/ps), then
``flinkdl run CONFIG`` in its own session with an unbounded generator (``--kafka``: a producer
feeding a local broker at ``--rate``), the PS, Prometheus metrics (free ports) and checkpoints
every 30 s on, and no prediction file (the disk would fill). Every interval it walks the job's
process tree with psutil and sums RSS (and USS) per role:

- ``jvm``: the Flink mini-cluster (py4j gateway JVM; heap capped by ``--jvm-args``, default 4 GB);
- ``driver``: the ``flinkdl run`` process: runner, and PyFlink's loopback Python harness, which
  runs the Python operators (featurize, train relay, evaluation and sinks) on the mini-cluster;
- ``harness``: PyFlink's ``beam_boot`` processes (with a loopback driver, only a bootstrap);
- ``worker``: the TF worker(s) (``python -m flinkdl.worker``);
- ``ps``: the parameter server; with ``--kafka`` also ``broker`` (tansu, in memory: it keeps
  every message, so it grows by design) and ``producer``.

Samples go to OUT/samples.jsonl. At the end, or on Ctrl-C / SIGTERM, it stops the job's session
(SIGTERM, then SIGKILL for what is left), the producer, broker and PS, and prints per role the
RSS at the end of the warm-up and at the end (medians over ``--window``), growth %, max, the
slope after warm-up and PASS/FAIL against ``--goal`` (5 % growth), and the events and events/s
from RUN_DIR/metrics.jsonl.
Needs psutil (``pip install psutil``); Linux.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from end_to_end import report  # bench/, beside this file

from flinkdl.config.schema import PsConfig
from flinkdl.devtools.net import free_port
from flinkdl.ps.local import ensure_server, stop_server
from flinkdl.sinks.run_log import METRICS_LOG

MB = 1 << 20


def classify(proc: psutil.Process, driver_pid: int) -> str | None:
    """The role of a process in the job's tree (None: shell wrappers, ``tee``)."""
    if proc.pid == driver_pid:
        return "driver"
    cmd = proc.cmdline()
    if cmd and os.path.basename(cmd[0]) == "java":
        return "jvm"
    module = cmd[cmd.index("-m") + 1] if "-m" in cmd[:-1] else ""
    if module == "flinkdl.worker":
        return "worker"
    if module.startswith("pyflink.fn_execution"):
        return "harness"
    return None


class Sampler:
    """Finds the processes by role and records their memory; remembers every process seen."""

    def __init__(self, driver_pid: int, fixed: dict[str, int], uss: bool) -> None:
        self.driver_pid, self.fixed, self.uss = driver_pid, fixed, uss
        self.seen: dict[int, psutil.Process] = {}

    def processes(self) -> list[tuple[str, psutil.Process]]:
        out = []
        roots = {"driver": self.driver_pid, **self.fixed}
        for root_role, pid in roots.items():
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in tree:
                try:
                    role = classify(p, self.driver_pid) if root_role == "driver" else root_role
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.seen.setdefault(p.pid, p)
                if role is not None:
                    out.append((role, p))
        return out

    def sample(self) -> dict[str, dict]:
        """``{role: {"rss_mb", "uss_mb", "pids"}}``, summed over the role's processes."""
        roles: dict[str, dict] = {}
        for role, p in self.processes():
            try:
                mem = p.memory_full_info() if self.uss else p.memory_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if not mem.rss:  # a zombie
                continue
            r = roles.setdefault(role, {"rss_mb": 0.0, "uss_mb": 0.0 if self.uss else None, "pids": []})
            r["rss_mb"] += mem.rss / MB
            if self.uss:
                r["uss_mb"] += mem.uss / MB
            r["pids"].append(p.pid)
        return roles

    def kill_leftovers(self, timeout: float = 15.0) -> None:
        """SIGKILL every process seen in the job's tree that outlived its session's SIGTERM."""
        alive = [p for p in self.seen.values() if p.is_running()]
        _, alive = psutil.wait_procs(alive, timeout=timeout)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()  # psutil checks the create time: a reused PID is not touched
        psutil.wait_procs(alive, timeout=5)


def last_progress(path: Path, tail_bytes: int = 1 << 18) -> dict | None:
    """The last complete JSON line of the job's ``metrics.jsonl`` (None before the first)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            lines = f.read().split(b"\n")[:-1]  # after the last newline: partial or empty
    except FileNotFoundError:
        return None
    for raw in reversed(lines):
        try:
            return json.loads(raw)
        except ValueError:
            continue
    return None


def summarize(samples: list[dict], warmup_s: float, window_s: float, goal_pct: float) -> list[dict]:
    """Per role: RSS at the end of warm-up (median of the samples in ``[warmup, warmup + window)``)
    and at the end (median of the last ``window``), so one GC cycle does not decide; growth, max,
    slope after warm-up (least squares, MB/h) and PASS/FAIL."""
    import numpy as np

    rows = []
    for role in dict.fromkeys(r for s in samples for r in s["roles"]):
        pts = np.array([(s["t_s"], s["roles"][role]["rss_mb"], s["roles"][role]["uss_mb"] or np.nan)
                        for s in samples if role in s["roles"]])
        after = pts[pts[:, 0] >= warmup_s]
        if len(after) < 2:
            continue
        first = after[after[:, 0] < after[0, 0] + window_s]
        last = after[after[:, 0] > after[-1, 0] - window_s]
        warm, end = np.median(first, axis=0), np.median(last, axis=0)
        growth = 100.0 * (end[1] - warm[1]) / warm[1]
        rows.append({"role": role, "warm_rss_mb": warm[1], "end_rss_mb": end[1], "growth_pct": growth,
                     "max_rss_mb": pts[:, 1].max(), "slope_mb_per_h": np.polyfit(after[:, 0], after[:, 1], 1)[0] * 3600,
                     "warm_uss_mb": warm[2], "end_uss_mb": end[2], "verdict": "PASS" if growth < goal_pct else "FAIL"})
    return [{k: v if isinstance(v, str) else float(v) for k, v in r.items()} for r in rows]


def throughput(samples: list[dict], warmup_s: float) -> dict:
    """Events processed, and events/s over the whole run and after warm-up (from progress lines)."""
    ev = [(s["t_s"], s["events_in"]) for s in samples if s["events_in"] is not None]
    if not ev:
        return {"events": 0, "ev_per_s": None, "ev_per_s_after_warmup": None}
    after = [e for e in ev if e[0] >= warmup_s]
    steady = (after[-1][1] - after[0][1]) / (after[-1][0] - after[0][0]) if len(after) > 1 else None
    return {"events": ev[-1][1], "ev_per_s": ev[-1][1] / ev[-1][0], "ev_per_s_after_warmup": steady}


def start_job(args: argparse.Namespace, out: Path, ps_address: str, bootstrap: str | None) -> subprocess.Popen:
    """``flinkdl run`` in its own session (one killpg stops JVM, harness and worker)."""
    sets = ["sinks.predictions=null", f"job.run_dir={out / 'run'}", "job.checkpoint_interval_s=30",
            f"job.checkpoint_dir={out / 'checkpoints'}", "metrics.enabled=true", "metrics.port=0",
            "ps.enabled=true", f"ps.address={ps_address}", "ps.start_local=false"]
    if bootstrap:
        sets += [f"source.kafka.bootstrap_servers={bootstrap}", "source.kafka.format=arrow"]
    else:
        sets += ["source.generator.events=null"]
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", args.config]
    for s in sets + args.set:
        cmd += ["--set", s]
    env = {**os.environ, "JVM_ARGS": args.jvm_args}  # pyflink's local gateway JVM takes these
    with open(out / "job.log", "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)


def stop_job(job: subprocess.Popen, sampler: Sampler) -> None:
    """SIGTERM the job's session (the runner cannot cancel an unbounded job from outside), then
    SIGKILL whatever in its tree is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGTERM)
    sampler.kill_leftovers()
    job.wait()


def start_kafka(out: Path, rate: float) -> tuple:
    """A local tansu broker and a throttled producer of the built-in stream (Arrow messages)."""
    from flinkdl.devtools import broker

    b = broker.start(out / "tansu.log")
    broker.create_topics(b.bootstrap, ["clicks", "predictions", "clicks-dead-letters"])
    with open(out / "producer.log", "ab") as log:
        producer = subprocess.Popen(
            [sys.executable, "-m", "flinkdl.cli", "produce", "--bootstrap", b.bootstrap, "--topic", "clicks",
             "--generator", "--format", "arrow", "--limit", str(10**12), "--rate", str(rate), "--quiet"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return b, producer


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="how long the job runs")
    p.add_argument("--warmup", type=float, default=5.0, metavar="MIN", help="growth is measured from here")
    p.add_argument("--interval", type=float, default=10.0, metavar="S", help="seconds between samples")
    p.add_argument("--window", type=float, default=1.0, metavar="MIN", help="RSS at warm-up / end: median over this")
    p.add_argument("--goal", type=float, default=5.0, metavar="PCT", help="max RSS growth after warm-up")
    p.add_argument("--config", default=None, help="default: jobs/click_stream.yaml (--kafka: *_kafka.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    p.add_argument("--jvm-args", default="-Xmx4g", help="mini-cluster JVM options; '' = ergonomic heap (1/4 of "
                   "RAM: the kernel OOM-killed a 6 GB-heap JVM on the shared 24 GB machine; 2 GB filled in a minute)")
    p.add_argument("--kafka", action="store_true", help="Kafka in and out through a local tansu broker")
    p.add_argument("--rate", type=float, default=10_000, help="--kafka: produced events/s")
    p.add_argument("--no-uss", dest="uss", action="store_false", help="RSS only (USS reads smaps)")
    p.add_argument("--out", type=Path, default=None, help="default: /tmp/flinkdl-soak-<time>")
    p.add_argument("--keep", action="store_true", help="keep OUT/ps and OUT/checkpoints")
    p.add_argument("--json", help="also write the per-role rows as JSON here")
    args = p.parse_args()
    args.config = args.config or ("jobs/click_stream_kafka.yaml" if args.kafka else "jobs/click_stream.yaml")
    out = (args.out or Path(f"/tmp/flinkdl-soak-{time.strftime('%Y%m%d-%H%M%S')}")).resolve()
    out.mkdir(parents=True, exist_ok=True)

    ps_cfg = PsConfig(enabled=True, address=f"grpc://127.0.0.1:{free_port()}", checkpoint_dir=str(out / "ps"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: a Ctrl-C must not stop the PS before the job
    ps = ensure_server(ps_cfg, str(out / "ps-server.log"))
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background (SIGINT ignored)
        signal.signal(sig, _interrupt)
    kafka, producer, job, sampler, samples = None, None, None, None, []
    try:
        fixed = {"ps": ps.pid}
        if args.kafka:
            kafka, producer = start_kafka(out, args.rate)
            fixed.update(broker=kafka.pid, producer=producer.pid)
        job = start_job(args, out, ps_cfg.address, kafka.bootstrap if kafka else None)
        sampler = Sampler(job.pid, fixed, args.uss)
        print(f"soak: {args.minutes:g} min, warm-up {args.warmup:g} min, job pid {job.pid}, PS pid {ps.pid}, "
              f"out {out}", flush=True)
        t0, end = time.time(), time.time() + 60 * args.minutes
        with open(out / "samples.jsonl", "w", buffering=1) as f:
            while time.time() < end:
                if job.poll() is not None:
                    raise RuntimeError(f"the job exited ({job.returncode}) early; see {out / 'job.log'}")
                t_s = time.time() - t0
                m = last_progress(out / "run" / METRICS_LOG)
                s = {"t_s": round(t_s, 1), "events_in": m and m["events_in"], "roles": sampler.sample()}
                samples.append(s)
                f.write(json.dumps(s) + "\n")
                mem = "  ".join(f"{r} {v['rss_mb']:,.0f}" for r, v in s["roles"].items())
                print(f"[{t_s:6.0f}s] events {s['events_in'] or 0:>12,}  RSS MB: {mem}", flush=True)
                time.sleep(max(0.0, t0 + len(samples) * args.interval - time.time()))
    except KeyboardInterrupt:
        print("soak: interrupted, stopping", flush=True)
    finally:
        if job is not None:
            stop_job(job, sampler)
        if producer is not None:
            producer.terminate()
            producer.wait()
        if kafka is not None:
            kafka.stop()
        stop_server(ps)
        if not args.keep:
            for d in ("ps", "checkpoints"):
                shutil.rmtree(out / d, ignore_errors=True)

    warmup_s = 60 * args.warmup
    rows = summarize(samples, warmup_s, 60 * args.window, args.goal)
    report(rows, ["role", "RSS end of warm-up MB", "RSS end MB", "growth %", "max MB", "slope MB/h", "verdict"],
           lambda r: [r["role"], f"{r['warm_rss_mb']:,.0f}", f"{r['end_rss_mb']:,.0f}", f"{r['growth_pct']:+.1f}",
                      f"{r['max_rss_mb']:,.0f}", f"{r['slope_mb_per_h']:+,.0f}", r["verdict"]], args.json)
    tp = throughput(samples, warmup_s)
    rate = "-" if tp["ev_per_s_after_warmup"] is None else f"{tp['ev_per_s_after_warmup']:,.0f}"
    print(f"events {tp['events']:,} in {samples[-1]['t_s'] if samples else 0:.0f} s; after warm-up {rate} ev/s; "
          f"samples {out / 'samples.jsonl'}")
    return 0 if rows and all(r["verdict"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
