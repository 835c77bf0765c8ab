"""``flinkdl run`` (a job on the embedded Flink mini-cluster) and ``flinkdl report`` (its plot)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from flinkdl.config.flink import dynamic_property, merged
from flinkdl.config.loader import load_config
from flinkdl.preflight import check_run


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so it unwinds like Ctrl-C (the job is cancelled)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def stop_descendants(grace_s: float = 5.0) -> int:
    """Terminate, then kill, every process this one started (Flink's JVM, Python harnesses, TF
    workers, a local PS); returns how many were still running."""
    import psutil

    procs = psutil.Process().children(recursive=True)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    return len(procs)


def _cmd_run(args: argparse.Namespace) -> int:
    from flinkdl.runner import JobFailed, run

    cfg = load_config(args.config, args.set)
    cfg.flink.update(merged({}, args.flink))  # -D wins over the flink: section
    check_run(cfg)
    print(f"flinkdl: job {cfg.job.name!r}, model {cfg.model.name}, source {cfg.source.kind}, "
          f"run dir {cfg.job.run_dir}", flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        summary = run(cfg, args.max_events, out=sys.stdout, until_idle_s=args.until_idle)
    except KeyboardInterrupt as e:
        name, code = ("SIGTERM", 143) if isinstance(e, Terminated) else ("SIGINT", 130)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        stopped = stop_descendants()
        # (the runner sent sys.stderr to devnull for the cancelled operators' teardown: the real one)
        print(f"flinkdl: {name}: job cancelled, {stopped} child process(es) stopped; "
              f"partial results in {cfg.job.run_dir}", file=sys.__stderr__ or sys.stderr, flush=True)
        return code
    except JobFailed as e:
        stop_descendants()
        print(f"flinkdl: the job failed: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = json.dumps(summary, indent=2)
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(text + "\n")
    print(text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from flinkdl.report import draw

    try:
        out = draw(Path(args.run_dir), Path(args.out))
    except (FileNotFoundError, ValueError) as e:
        print(f"flinkdl: {e}", file=sys.stderr)
        return 2
    print(f"flinkdl: wrote {out}")
    return 0


def add_flink_option(p: argparse.ArgumentParser) -> None:
    """``-D key=value``: a Flink configuration option, passed through unchanged (repeatable)."""
    p.add_argument("-D", dest="flink", action="append", default=[], type=dynamic_property, metavar="KEY=VALUE",
                   help="a Flink option, e.g. -D taskmanager.memory.process.size=4g (repeatable; wins over "
                        "the config's flink: section)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``report``."""
    r = sub.add_parser("run", help="run a job on the embedded Flink mini-cluster")
    r.add_argument("config", help="job config (YAML), e.g. jobs/click_stream.yaml")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key by dotted path, e.g. --set model.name=lr (repeatable)")
    add_flink_option(r)
    r.add_argument("--max-events", type=int, default=None, metavar="N",
                   help="stop after N events (the generator produces exactly N)")
    r.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                   help="stop once no new event has come for SECONDS (process what exists, then stop)")
    r.add_argument("--summary", default=None, metavar="FILE", help="write the run summary as JSON")
    r.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="draw AUC and log loss over time from RUN_DIR/metrics.jsonl")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a job's run directory (job.run_dir)")
    rep.add_argument("--out", default="auc.png", help="PNG to write (default: auc.png)")
    rep.set_defaults(func=_cmd_report)
