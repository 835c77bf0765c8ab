"""``flinkdl produce``: the built-in stream or a CSV/TSV file into a Kafka topic (:mod:`flinkdl.devtools.produce`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_produce(args: argparse.Namespace) -> int:
    from flinkdl.devtools.broker import create_topics
    from flinkdl.devtools.produce import file_batches, generator_batches, produce

    if args.feedback_topic:
        return _produce_feedback(args)
    if args.generator:
        limit = args.limit or 1_000_000
        batches, total = generator_batches(limit, args.batch_size, args.seed, args.preset), limit
    else:
        path = Path(args.file)
        if not path.is_file():
            print(f"flinkdl produce: no such file {path}", file=sys.stderr)
            return 2
        try:
            batches, total = file_batches(path, args.batch_size, args.limit, args.delimiter,
                                          text=args.format == "csv"), args.limit
        except ValueError as e:
            print(f"flinkdl produce: {e}", file=sys.stderr)
            return 2
    create_topics(args.bootstrap, [args.topic])
    n = produce(args.bootstrap, args.topic, batches, args.format, args.rate, total, progress=not args.quiet)
    print(f"produced {n:,} events to {args.topic} ({args.format})")
    return 0


def _produce_feedback(args: argparse.Namespace) -> int:
    from flinkdl.config.feedback import DelayConfig
    from flinkdl.devtools.broker import create_topics
    from flinkdl.devtools.produce_feedback import produce_delayed

    if not args.generator or args.format != "json":
        print("flinkdl produce: --feedback-topic needs --generator and --format json", file=sys.stderr)
        return 2
    create_topics(args.bootstrap, [args.topic, args.feedback_topic])
    imps, clicks = produce_delayed(args.bootstrap, args.topic, args.feedback_topic, args.limit or 1_000_000,
                                   min(args.batch_size, 1024), args.seed, DelayConfig(scale=args.delay_scale),
                                   args.rate, args.end_tick_s)
    print(f"produced {imps:,} impressions to {args.topic} and {clicks:,} delayed clicks to {args.feedback_topic}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``produce``."""
    p = sub.add_parser("produce", help="replay the built-in stream or a CSV/TSV file into a Kafka topic")
    p.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    p.add_argument("--topic", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", action="store_true", help="the built-in click stream (event ids 0..N-1)")
    src.add_argument("--file", metavar="PATH", help="CSV (.csv) or TSV (other extensions) with a header")
    p.add_argument("--delimiter", default=None, metavar="CHAR",
                   help="--file's separator (default: ',' for .csv, a tab for any other extension), e.g. ';'")
    p.add_argument("--format", choices=["csv", "json", "arrow"], default="csv")
    p.add_argument("--rate", type=float, default=None, metavar="EV_PER_S",
                   help="throttle (default: as fast as possible)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="events (generator default 1,000,000)")
    p.add_argument("--batch-size", type=int, default=4096, help="events per Arrow message (and per read)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (jobs/click_stream*.yaml use 7)")
    p.add_argument("--preset", default=None, metavar="family-N",
                   help="a member of the generator family (its own seed; see source.generator.preset)")
    p.add_argument("--feedback-topic", metavar="TOPIC", help="with --generator: impressions (no label) to --topic, "
                   "delayed clicks here, in event-time order (docs/FEEDBACK.md)")
    p.add_argument("--delay-scale", type=float, default=1 / 60, metavar="X",
                   help="multiply the click delays (default 1/60: hours of delay become minutes of event time)")
    p.add_argument("--end-tick-s", type=float, default=None, metavar="S",
                   help="end both topics with a tick S event-time seconds after the last event (closes every window)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_produce)
