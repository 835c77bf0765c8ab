"""Where a generator-path job's CPU goes: per process, per JVM thread, and the client's Python stages.

    python bench/profile_job.py --events 4000000 --delay 4 --window 5          # LR, anchors' settings
    python bench/profile_job.py --events 1000000 --delay 0.3 --window 3        # the early window anchors sees
    JVM_ARGS="" python bench/profile_job.py ...   # the JVM's default compilers and collector (job.LIGHT_JVM_ARGS)

Runs ``flinkdl.runner.run`` in a child process with the settings ``bench/anchors.py`` gives LR (``--set``
adds more), waits for the sink's first progress line plus ``--delay`` seconds, then over ``--window``
seconds: the CPU of every thread of every process of the job from /proc (so the JVM's compiler, GC,
gRPC and timer threads show apart; Python threads are all named ``python``), per event the sink counted
in the window; and ``py-spy record`` (non-blocking, 100 Hz) of the client, whose samples inside a Beam
bundle are sorted into stages (generate, hash by rank, featurize, pack, the worker's socket, the sink)
and scaled to the client's CPU µs/event. py-spy counts a thread that waits in a syscall (a blocked
``sendall``) as running, so the stage split is of wall time on the bundle thread, the CPU total is not.
Prints a final JSON line.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

from streams import MODEL_SETTINGS

from flinkdl.config.loader import load_config

PY_SPY = Path(sys.executable).parent / "py-spy"
_CHILD = """
import json, sys
from flinkdl.config.schema import JobConfig
from flinkdl.runner import run
cfg = JobConfig.model_validate_json(open(sys.argv[1]).read())
json.dump(run(cfg, int(sys.argv[2]), oracle=False), open(sys.argv[3], "w"))
"""
#: (stage, a frame that marks it), first match wins; the rest of a bundle thread's samples are Beam's
STAGES = [("generate", "ClickStream."), ("hash by rank", "RankHashes."), ("featurize", "Featurizer."),
          ("pack", "channel.py:37"), ("envelope (eval columns, letters)", "FeatureMaker.envelope"),
          ("make (other)", "BatchGenerator.make"), ("sink: progress line (timer)", "on_timer"),
          ("sink: per batch", "pipeline/sink.py"), ("worker socket: send", "send_payload"),
          ("worker socket: receive", "receive_with_metadata"), ("trainer (other)", "flinkdl")]


def _threads(pid: int) -> dict[int, tuple[str, int]]:
    """tid → (name, CPU clock ticks: user + system)."""
    out = {}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            name = Path(t, "comm").read_text().strip()
            fields = Path(t, "stat").read_text().rsplit(")", 1)[1].split()
            out[int(t.rsplit("/", 1)[1])] = (name, int(fields[11]) + int(fields[12]))
        except OSError:
            continue
    return out


def _role(p: psutil.Process, client: int) -> str:
    if p.pid == client:
        return "client"
    cmd = " ".join(p.cmdline())
    if "java" in p.name():
        return "jvm"
    return "tf-worker" if "flinkdl.worker" in cmd else "ps-server" if " ps serve" in cmd else p.name()


def stages(raw: Path) -> collections.Counter:
    """py-spy raw samples inside a Beam bundle (``sdk_worker`` task), counted by :data:`STAGES`."""
    count: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        if not any("sdk_worker.py" in f and "task" in f for f in frames):
            continue
        stage = next((name for name, mark in STAGES if any(mark in f for f in frames)), "Beam (bundle harness)")
        count[stage] += int(n)
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="jobs/click_stream.yaml")
    p.add_argument("--model", default="lr")
    p.add_argument("--events", type=int, default=4_000_000)
    p.add_argument("--delay", type=float, default=4.0, help="seconds after the sink's first progress line")
    p.add_argument("--window", type=int, default=5, help="seconds (py-spy takes whole seconds)")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profile-job-"))
    cfg = load_config(args.config, [f"model.name={args.model}", *MODEL_SETTINGS.get(args.model, []),
                                    "sinks.predictions=null", "job.report_every_s=1", f"job.run_dir={tmp}/run",
                                    f"source.generator.events={args.events}", *args.set])
    (tmp / "spec.json").write_text(cfg.model_dump_json())
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp / "spec.json"), str(args.events),
                              str(tmp / "summary.json")])
    metrics = tmp / "run" / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().strip()):
        if child.poll() is not None:
            sys.exit(f"the job exited ({child.returncode}) before its first progress line")
        time.sleep(0.1)
    time.sleep(args.delay)
    procs = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
    roles = {q.pid: _role(q, child.pid) for q in procs}
    before = {q.pid: _threads(q.pid) for q in procs}
    spy = subprocess.Popen([str(PY_SPY), "record", "-p", str(child.pid), "-d", str(args.window), "-r", "100",
                            "--nonblocking", "--format", "raw", "-o", str(tmp / "client.raw")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0, events0 = time.time(), json.loads(metrics.read_text().splitlines()[-1])["events_in"]
    time.sleep(args.window)
    after = {q.pid: _threads(q.pid) for q in procs}
    t1, events1 = time.time(), json.loads(metrics.read_text().splitlines()[-1])["events_in"]
    spy.wait()
    events, tick = max(events1 - events0, 1), os.sysconf("SC_CLK_TCK")
    us = lambda ticks: 1e6 * ticks / tick / events  # noqa: E731
    print(f"window {t1 - t0:.1f} s, {events:,} events ({events / (t1 - t0):,.0f}/s), load {os.getloadavg()[0]:.1f}")
    result: dict = {"events": events, "rate": events / (t1 - t0), "load": os.getloadavg()[0], "processes": {}}
    for pid, role in roles.items():
        by_name: collections.Counter = collections.Counter()
        for tid, (name, ticks) in after.get(pid, {}).items():
            by_name[name] += ticks - before[pid].get(tid, (name, 0))[1]
        total = sum(by_name.values())
        if not total:
            continue
        result["processes"][role] = {"us_per_event": us(total), "threads": {n: us(t) for n, t in by_name.items() if t}}
        print(f"{role}: {us(total):.3f} µs/event")
        for name, ticks in by_name.most_common(12):
            if ticks:
                print(f"    {name:18s} {us(ticks):.3f}")
    count = stages(tmp / "client.raw") if (tmp / "client.raw").exists() else collections.Counter()
    client_us = result["processes"].get("client", {}).get("us_per_event", 0.0)
    if not count:
        print("py-spy recorded nothing inside a Beam bundle (is it installed beside this python?)")
    total = sum(count.values()) or 1
    print(f"client's bundle threads by stage (py-spy, {total} samples, scaled to its {client_us:.2f} µs/event):")
    for name, n in count.most_common():
        print(f"    {name:34s} {100 * n / total:5.1f} %  {client_us * n / total:.3f}")
    result["client_stages"] = {name: client_us * n / total for name, n in count.items()}
    child.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
