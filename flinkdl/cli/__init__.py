"""``flinkdl`` command line: one module per command group, each with ``register(subparsers)``.

``flinkdl run|report`` (:mod:`.run`), ``cluster|submit|resume|jobs|stop`` (:mod:`.cluster`),
``serve`` (:mod:`.serve`), ``ps serve|export|import`` (:mod:`.ps`), ``publish list|rollback|resume``
(:mod:`.publish`), ``broker start|stop|status`` (:mod:`.broker`), ``produce``
(:mod:`.produce`).
"""

from __future__ import annotations

import argparse
import sys

from flinkdl.cli import broker, cluster, produce, ps, publish, run, serve
from flinkdl.config.loader import ConfigError
from flinkdl.preflight import PreflightError

GROUPS = (run, serve, cluster, produce, broker, ps, publish)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flinkdl", description="Streaming online learning on Apache Flink.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "max_events", None) is not None and args.max_events <= 0:
        print(f"flinkdl: --max-events must be > 0, got {args.max_events}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"flinkdl: invalid config:\n{e}", file=sys.stderr)
        return 2
    except PreflightError as e:
        print(f"flinkdl: {e}", file=sys.stderr)
        return 2
