"""CPU time and RSS of every process of a job run, sampled from a thread of the benchmark process.

The job runs under this process: the Flink JVM (a child), the Python operators (generate +
featurize, the trainer's relay, evaluate + sink) either in this process (PyFlink's loopback mode,
its default on a local mini-cluster), in one Beam harness process per slot, or inside the JVM
(thread mode), the TF worker (a child of whichever runs the trainer) and, with ``ps.enabled``,
the local parameter server. Each sample records per pid its role, cumulative CPU
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

ROLES = ("jvm", "python-harness", "tf-worker", "ps-server", "driver", "other")


def _role(p: psutil.Process, driver: int) -> str:
    cmd = " ".join(_cmd(p))
    if p.pid == driver:  # the runner; on a mini-cluster also PyFlink's loopback Python operators
        return "driver"
    if os.path.basename(_cmd(p)[0] if _cmd(p) else "") == "java":
        return "jvm"
    if "flinkdl.worker" in cmd:
        return "tf-worker"
    if " ps serve" in cmd:
        return "ps-server"
    if "beam_boot" in cmd or "pyflink.fn_execution" in cmd:  # all Python operators of a slot
        return "python-harness"
    return "other"


class ProcessSampler:
    """``with ProcessSampler() as s: ...`` samples this process tree every ``interval`` s."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        #: the process running the job (``flinkdl.runner.run``), if not this one: this one is then not counted
        self.driver_pid: int | None = None
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
            snap: dict[int, tuple[str, float, int]] = {}
            driver = self.driver_pid
            for p in [*([] if driver else [me]), *me.children(recursive=True)]:
                try:
                    role = self._roles.get(p.pid) or _role(p, driver or me.pid)
                    if role not in ("other", "jvm"):  # a fresh fork shows its parent's command line
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

        Per process: its last sample at or before ``t0`` (or its first sample, if it started
        later) to its last sample before ``t1`` (processes that ended count up to their end)."""
        start: dict[int, float] = {}
        end: dict[int, tuple[str, float]] = {}
        for ts, snap in self.samples:
            if ts > t1 + self.interval:
                break
            for pid, (role, c, _) in snap.items():
                if ts <= t0 or pid not in start:
                    start[pid] = c
                end[pid] = (role, c)
        cpu: dict[str, float] = defaultdict(float)
        for pid, (role, c) in end.items():
            cpu[role] += c - start[pid]
        out = {r: 1e6 * cpu[r] / max(events, 1) for r in ROLES if r in cpu}
        out["total"] = sum(out.values())
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


def wait_quiet(busy: float = 25.0, settle: int = 2, max_s: float = 30.0) -> dict:
    """Wait until the machine's CPU (all cores, psutil) stays below ``busy`` % for ``settle`` half-second
    samples in a row, at most ``max_s``: a baseline measured right after a job must not share the cores
    with the job's processes still exiting. Returns the seconds waited and the last sample."""
    start, calm, last = time.monotonic(), 0, 100.0
    while calm < settle and time.monotonic() - start < max_s:
        last = psutil.cpu_percent(interval=0.5)
        calm = calm + 1 if last < busy else 0
    return {"waited_s": round(time.monotonic() - start, 1), "busy_pct": last}
