"""``flinkdl serve``: the scoring-only job over a request topic, with the PS's latest model.

On the local mini-cluster by default; ``--rest URL`` submits it to a standalone Flink cluster
instead (``flink run -pym flinkdl.pipeline --serve``, as ``flinkdl submit`` does the training job)
and prints its job id. Either way the parameter server and the broker are checked first.
"""

from __future__ import annotations

import argparse
import signal
import sys

from flinkdl.config.flink import merged
from flinkdl.config.loader import load_config
from flinkdl.preflight import check_serve


def _cmd_serve(args: argparse.Namespace) -> int:
    from flinkdl.cli.run import Terminated, _on_sigterm, stop_descendants
    from flinkdl.pipeline.job import make_env
    from flinkdl.pipeline.serve import build_serving, serving_job

    cfg = load_config(args.config, args.set)
    cfg.flink.update(merged({}, args.flink))  # -D wins over the flink: section
    try:
        cfg = serving_job(cfg)
    except ValueError as e:
        print(f"flinkdl serve: {e}", file=sys.stderr)
        return 2
    check_serve(cfg)
    if args.rest is not None:
        return _submit(args)
    k = cfg.source.kafka
    assert k is not None and cfg.sinks.kafka is not None  # serving_job checked both
    print(f"flinkdl serve: {k.topic!r} (group {k.group_id!r}, from {k.starting_offsets}) → "
          f"{cfg.sinks.kafka.topic!r}, model {cfg.model.name} from "
          f"{cfg.publish.dir if cfg.serving.source == 'published' else cfg.ps.address}, "
          f"parallelism {cfg.job.parallelism}, refresh every {cfg.serving.refresh_s:g} s", flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        flink = make_env(cfg, training=False)
        build_serving(flink, cfg)
        flink.execute(f"{cfg.job.name}-serving")
    except KeyboardInterrupt as e:
        name, code = ("SIGTERM", 143) if isinstance(e, Terminated) else ("SIGINT", 130)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stopped = stop_descendants()
        print(f"flinkdl serve: {name}: job cancelled, {stopped} child process(es) stopped", file=sys.stderr,
              flush=True)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from flinkdl.cluster.standalone import LocalCluster
    from flinkdl.preflight import check_flink

    check_flink(args.rest)
    print(LocalCluster(args.cluster_dir, args.rest).submit(args.config, args.set, flink=args.flink, serve=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``."""
    from flinkdl.cli.run import add_flink_option

    s = sub.add_parser("serve", help="score a Kafka request topic with the parameter server's latest model")
    s.add_argument("config", help="job config (YAML) with source.kafka (requests), sinks.kafka and ps")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key by dotted path, e.g. --set serving.parallelism=2 (repeatable)")
    add_flink_option(s)
    s.add_argument("--rest", default=None, metavar="URL",
                   help="submit to the standalone Flink cluster at this REST address (default: run locally)")
    s.add_argument("--cluster-dir", default="runs/cluster", help="with --rest: the cluster's conf directory")
    s.set_defaults(func=_cmd_serve)
