"""CPU time and RSS of every process of a job run, sampled from a thread of the benchmark process.

The job runs under this process: the Flink JVM (a child), its Python harness processes (one per
chain: featurize, train, evaluate+sink), the TF worker (a child of the train harness) and, with
``ps.enabled``, the local parameter server. Each sample records per pid its role, cumulative CPU
seconds (user + system) and RSS. :meth:`ProcessSampler.per_event` turns two instants of the
stream into CPU µs per event per role (start-up excluded); :meth:`ProcessSampler.rss` gives the
RSS of each role at mid-stream and at the end, so growth with stream length shows.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict
from typing import Self

import psutil

ROLES = ("jvm", "featurize", "train-relay", "tf-worker", "evaluate-sink", "ps-server", "driver")


def _role(p: psutil.Process, me: int, worker_parents: set[int], run_dir: str) -> str:
    cmd = " ".join(p.cmdline())
    if p.pid == me:
        return "driver"
    if "java" in os.path.basename(p.cmdline()[0] if p.cmdline() else ""):
        return "jvm"
    if "flinkdl.worker" in cmd:
        return "tf-worker"
    if " ps serve" in cmd or "flinkdl.ps" in cmd:
        return "ps-server"
    if p.pid in worker_parents:
        return "train-relay"
    try:  # the sink keeps RUN_DIR/metrics.jsonl open for the whole run
        if any(f.path.startswith(run_dir) and f.path.endswith("metrics.jsonl") for f in p.open_files()):
            return "evaluate-sink"
    except psutil.Error:
        pass
    return "featurize" if "python" in cmd else "other"


class ProcessSampler:
    """``with ProcessSampler(run_dir) as s: ...`` samples this process tree every ``interval`` s."""

    def __init__(self, run_dir: str, interval: float = 0.2) -> None:
        self.run_dir, self.interval = str(os.path.abspath(run_dir)), interval
        self.samples: list[tuple[float, dict[int, tuple[str, float, int]]]] = []
        self._stop = threading.Event()
        self._roles: dict[int, str] = {}
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            procs = [me, *me.children(recursive=True)]
            parents = {p.ppid() for p in procs if "flinkdl.worker" in " ".join(_cmd(p))}
            snap: dict[int, tuple[str, float, int]] = {}
            for p in procs:
                try:
                    role = self._roles.get(p.pid) or _role(p, me.pid, parents, self.run_dir)
                    if role not in ("featurize", "other"):  # settled; a harness may still open its files
                        self._roles[p.pid] = role
                    t, rss = p.cpu_times(), p.memory_info().rss
                    snap[p.pid] = (role, t.user + t.system, rss)
                except psutil.Error:
                    continue
            self.samples.append((time.time(), snap))
            self._stop.wait(self.interval)

    def _at(self, t: float) -> dict[int, tuple[str, float, int]]:
        i = min(bisect.bisect_left([s[0] for s in self.samples], t), len(self.samples) - 1)
        return self.samples[i][1]

    def per_event(self, t0: float, t1: float, events: int) -> dict[str, float]:
        """CPU µs per event of each role between wall times ``t0`` and ``t1`` (``events`` in between).

        A process that ended before ``t1`` counts with its last sample."""
        first, cpu = self._at(t0), defaultdict(float)
        last: dict[int, tuple[str, float, int]] = {}
        for ts, snap in self.samples:
            if ts > t1 + self.interval:
                break
            last.update(snap)
        for pid, (role, c1, _) in last.items():
            cpu[role] += c1 - (first[pid][1] if pid in first else 0.0)
        out = {r: 1e6 * cpu[r] / max(events, 1) for r in ROLES if r in cpu}
        out["total"] = sum(out.values()) - out.get("driver", 0.0)
        return out

    def rss(self, t_mid: float, t_end: float) -> dict[str, tuple[int, int]]:
        """Per role, (RSS at ``t_mid``, RSS at ``t_end``) in bytes, summed over its processes."""
        out = {}
        for name, t in (("mid", t_mid), ("end", t_end)):
            per: dict[str, int] = defaultdict(int)
            for role, _, rss in self._at(t).values():
                per[role] += rss
            out[name] = per
        return {r: (out["mid"].get(r, 0), out["end"].get(r, 0)) for r in ROLES if r in out["end"] or r in out["mid"]}


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
