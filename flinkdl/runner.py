"""Run a job on the embedded Flink mini-cluster, print its progress, return its summary.

The job writes ``RUN_DIR/metrics.jsonl`` (see :mod:`flinkdl.sinks.run_log`); this module
tails it while the job runs, and cancels unbounded jobs once ``--max-events`` is reached.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from flinkdl.config.loader import dump_config
from flinkdl.config.schema import JobConfig
from flinkdl.sinks.run_log import METRICS_LOG

log = logging.getLogger(__name__)
TERMINAL = {"FINISHED", "FAILED", "CANCELED"}


def prepare(cfg: JobConfig, max_events: int | None) -> JobConfig:
    """Apply ``--max-events`` (exact for the generator) and start a clean run directory."""
    cfg = cfg.model_copy(deep=True)
    if max_events is not None and cfg.source.kind == "generator":
        cfg.source.generator.events = max_events
    run_dir = Path(cfg.job.run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    return cfg


def format_progress(m: dict, t0: float) -> str:
    auc = "undefined" if m["auc"] is None else f"{m['auc']:.4f}"
    ll = "-" if m["logloss"] is None else f"{m['logloss']:.4f}"
    rate = "-" if not m["rows_per_s"] else f"{m['rows_per_s']:,.0f}"
    return (f"[{m['t'] - t0:6.1f}s] events {m['events_in']:>10,}  trained {m['events_trained']:>10,}  "
            f"dead {m['dead_letter']:>5,}  AUC {auc}  logloss {ll}  {rate} ev/s  v{m['model_version']}")


class _Tail:
    """Follows the run log: the lines appended since the last poll, and the last line."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos = path, 0
        self.last: dict | None = None

    def poll(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path) as f:
            f.seek(self.pos)
            data = f.read()
        complete = data[: data.rfind("\n") + 1]
        self.pos += len(complete)
        rows = [json.loads(x) for x in complete.splitlines() if x.strip()]
        if rows:
            self.last = rows[-1]
        return rows


def _cancel(client, why: str = "after --max-events", timeout_s: float | None = None) -> None:
    """Cancel the job (it may have just ended on its own); wait at most ``timeout_s`` (None: until done)."""
    try:
        future = client.cancel()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is not None and not future.done() and time.monotonic() < deadline:
            time.sleep(0.1)
        if deadline is None or future.done():
            future.result()
    except Exception as e:
        log.warning("cancel %s: %s", why, str(e).splitlines()[0])


def run(cfg: JobConfig, max_events: int | None = None, out: TextIO | None = None,
        oracle: bool = True, until_idle_s: float | None = None) -> dict:
    """Run the job to completion (or ``max_events``, or ``until_idle_s`` without new events);
    return the summary dict.

    With ``ps.enabled`` and no parameter server answering at ``ps.address``, a local one is
    started for the run (versions in ``ps.checkpoint_dir``) and stopped after it.
    """
    from flinkdl.ps.local import ensure_server, require_role, stop_server

    local_ps = ensure_server(cfg.ps, str(Path(cfg.job.run_dir).parent / "ps-server.log")) if cfg.ps.enabled else None
    try:
        if cfg.ps.enabled and cfg.job.exactly_once:
            require_role(cfg.ps, "admin", "job.exactly_once rolls the PS back on recovery")
        return _run(cfg, max_events, out, oracle, until_idle_s)
    finally:
        stop_server(local_ps)


class _Quiet:
    """How long a running job has gone without new events; says so on the console once per
    ``job.report_every_s``, and tells when ``--until-idle`` is reached.

    Before the first event the idle clock allows for start-up (the TF workers): it waits at least
    ``START_GRACE_S``. The sink writes a progress line ``report_every_s`` after its last batch, so
    an idle limit shorter than that is raised to it (the last line must be complete).
    """

    START_GRACE_S = 60.0

    def __init__(self, report_every_s: float, until_idle_s: float | None, max_events: int | None) -> None:
        self.report_every_s, self.max_events = report_every_s, max_events
        self.until_idle_s = None if until_idle_s is None else max(until_idle_s, report_every_s + 1.0)
        self.events = -1
        self.since: float | None = None  # when events_in last changed (or the job started)
        self.said: float | None = None  # when the console last heard from the run

    def update(self, last: dict | None, now: float) -> None:
        events = last["events_in"] if last else -1
        if self.since is None or events != self.events:
            self.events, self.since, self.said = events, now, now

    def idle(self, now: float) -> bool:
        if self.until_idle_s is None or self.since is None:
            return False
        limit = self.until_idle_s if self.events >= 0 else max(self.until_idle_s, self.START_GRACE_S)
        return now - self.since >= limit

    def waiting_line(self, now: float, t0: float) -> str | None:
        if self.since is None or self.said is None or now - self.said < self.report_every_s:
            return None
        self.said = now
        have = "no event yet" if self.events < 0 else f"{self.events:,} events"
        goal = f" of --max-events {self.max_events:,}" if self.max_events else ""
        idle = f"; stopping after {self.until_idle_s:.0f} s idle (--until-idle)" if self.until_idle_s else ""
        return f"[{now - t0:6.1f}s] waiting: {have}{goal}, nothing new for {now - self.since:.0f} s{idle}"


class JobFailed(RuntimeError):
    """The job failed: the message gives the cause, as far as Flink and the workers' logs tell it."""


def _root_cause(e: BaseException) -> str:
    """The innermost cause of a (Java) exception, first line only."""
    java = getattr(e, "java_exception", None)
    if java is None:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    while java.getCause() is not None:
        java = java.getCause()
    return str(java.toString()).splitlines()[0]


def _worker_error(run_dir: Path) -> str | None:
    """The last ``SomeError: message`` line of the workers' logs (a TF worker that failed to start)."""
    for log_path in sorted(run_dir.glob("worker-*.log")):
        errors = [ln for ln in log_path.read_text(errors="replace").splitlines()
                  if ln and not ln.startswith(" ") and ("Error: " in ln or "Exception: " in ln)]
        if errors:
            return f"{errors[-1]} ({log_path})"
    return None


def _failure(client, run_dir: Path) -> JobFailed:
    """Why the job failed: the worker's own error when there is one, else Flink's root cause. (A
    mini-cluster shuts down when its only job fails, so its status can no longer be asked.)"""
    cause = None
    try:
        client.get_job_execution_result().result()
    except Exception as e:
        cause = _root_cause(e)
    return JobFailed(_worker_error(run_dir) or cause or "the Flink job failed (see the Flink log)")


def _idle_summary(last: dict | None, now: float) -> dict:
    """The final line of a run stopped by ``--until-idle``: its last progress line, or an empty run."""
    base = last or {"events_in": 0, "events_trained": 0, "dead_letter": 0, "auc": None, "logloss": None,
                    "rows_per_s": None, "model_version": 0}
    return {**base, "t": now, "final": True, "stopped": "idle"}


def _run(cfg: JobConfig, max_events: int | None, out: TextIO | None, oracle: bool,
         until_idle_s: float | None = None) -> dict:
    from flinkdl.pipeline.job import build, make_env
    from flinkdl.worker.warm import WarmWorkers

    t0 = time.time()
    cfg = prepare(cfg, max_events)
    # the TF workers import TensorFlow while Flink starts (before the gateway: its harness inherits the env)
    warm = WarmWorkers.maybe(cfg.job.parallelism, Path(cfg.job.run_dir), cfg.job.exactly_once)
    try:
        env = make_env(cfg)
        build(env, cfg, max_events)
        client = env.execute_async(cfg.job.name)
    except BaseException:
        if warm is not None:
            warm.close()
        raise
    try:
        return _follow(cfg, client, max_events, out, oracle, until_idle_s, t0)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the CLI's handler: stop the job, then unwind
        # the cancel hangs up on the in-process Python harness threads (loopback mode); their
        # "CANCELLED" errors (logged, or printed to sys.stderr) are the expected end, not something to print
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process
        threading.excepthook = lambda _args: None
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
        from flinkdl.worker.supervisor import cancel_all

        cancel_all()  # and no operator restarts a worker while the job and its workers are stopped
        _cancel(client, "on interrupt", timeout_s=15.0)
        raise
    finally:
        if warm is not None:
            warm.close()


def _follow(cfg: JobConfig, client, max_events: int | None, out: TextIO | None, oracle: bool,
            until_idle_s: float | None, t0: float) -> dict:
    """Print the job's progress until it ends (or is stopped); return its summary."""
    tail = _Tail(Path(cfg.job.run_dir) / METRICS_LOG)
    bounded = cfg.source.kind == "generator" and cfg.source.generator.events is not None
    state = "RUNNING"
    quiet = _Quiet(cfg.job.report_every_s, until_idle_s, max_events)
    running = False
    while True:
        for m in tail.poll():
            if out:
                print(format_progress(m, t0), file=out, flush=True)
        now = time.time()
        if running:
            quiet.update(tail.last, now)
            line = quiet.waiting_line(now, t0)
            if line and out:
                print(line, file=out, flush=True)
            if quiet.idle(now) and not (tail.last and tail.last["final"]):
                _cancel(client)
                tail.last = _idle_summary(tail.last, now)
                with open(tail.path, "a") as f:
                    f.write(json.dumps(tail.last) + "\n")
                if out:
                    print(format_progress(tail.last, t0) + "  (idle: stopped)", file=out, flush=True)
                break
        if tail.last and tail.last["final"]:
            if bounded:
                client.get_job_execution_result().result()  # let the bounded job finish by itself
            else:
                _cancel(client)
            break
        try:
            state = str(client.get_job_status().result()).split(".")[-1]
        except Exception:  # the mini-cluster shut down: its job failed
            raise _failure(client, Path(cfg.job.run_dir)) from None
        running = running or state == "RUNNING"
        if state in TERMINAL:
            if state == "FAILED":
                raise _failure(client, Path(cfg.job.run_dir))
            tail.poll()
            break
        time.sleep(0.3)
    if tail.last is None or not tail.last["final"]:
        raise RuntimeError(f"job ended ({state}) without a final summary in {tail.path}")
    summary = dict(tail.last)
    if cfg.ps.enabled:  # the workers' last deltas reach the parameter server after the job ends
        from flinkdl.ps.local import wait_final_pushes

        reports = wait_final_pushes(Path(cfg.job.run_dir), cfg.job.parallelism)
        versions = [r["committed"]["version"] for r in reports if r.get("committed")]
        summary["ps_version"] = max(versions) if versions else None
    if cfg.publish.enabled:  # the publisher writes its last version after the job ends, too
        from flinkdl.publish.layout import wait_final_report

        summary["publish"] = wait_final_report(Path(cfg.job.run_dir))
    if cfg.model.name == "ensemble":
        from flinkdl.worker.hooks.variants import read_reports

        summary["variants"] = read_reports(cfg.job.run_dir, cfg.job.parallelism)
    summary.update(elapsed_s=time.time() - t0, job_id=str(client.get_job_id()), run_dir=str(cfg.job.run_dir))
    gen = cfg.source.generator if cfg.source.kind == "generator" else None
    if oracle and gen is not None and gen.events:
        from flinkdl.sources.generator import ClickStream

        summary["oracle_auc"] = ClickStream.from_config(gen).oracle_auc(gen.events, gen.batch_size)
    return summary
