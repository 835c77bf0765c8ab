"""``flinkdl produce`` and ``flinkdl broker start|stop|status`` (see :mod:`flinkdl.produce`, :mod:`flinkdl.broker`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_produce(args: argparse.Namespace) -> int:
    from flinkdl import broker
    from flinkdl.produce import file_batches, generator_batches, produce

    if args.generator:
        limit = args.limit or 1_000_000
        batches, total = generator_batches(limit, args.batch_size, args.seed), limit
    else:
        path = Path(args.file)
        if not path.is_file():
            print(f"flinkdl produce: no such file {path}", file=sys.stderr)
            return 2
        batches, total = file_batches(path, args.batch_size, args.limit), args.limit
    broker.create_topics(args.bootstrap, [args.topic])
    n = produce(args.bootstrap, args.topic, batches, args.format, args.rate, total, progress=not args.quiet)
    print(f"produced {n:,} events to {args.topic} ({args.format})")
    return 0


def _cmd_broker(args: argparse.Namespace) -> int:
    from flinkdl import broker

    state = Path(args.state)
    if args.action == "start":
        b = broker.start_detached(state, Path(args.durable) if args.durable else None)
        if args.topics:
            broker.create_topics(b.bootstrap, args.topics.split(","))
        print(b.bootstrap)
    elif args.action == "stop":
        print("stopped" if broker.stop_detached(state) else "no broker running")
    else:
        b = broker.read_state(state)
        store = {"durable": str(b.store.root), "store_pid": b.store.pid} if b and b.store else {}
        print(json.dumps({"pid": b.pid, "bootstrap": b.bootstrap} | store) if b else "no broker running")
        return 0 if b else 1
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="replay the built-in stream or a CSV/TSV file into a Kafka topic")
    p.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    p.add_argument("--topic", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", action="store_true", help="the built-in click stream (event ids 0..N-1)")
    src.add_argument("--file", metavar="PATH", help="CSV (.csv) or TSV (other extensions) with a header")
    p.add_argument("--format", choices=["csv", "json", "arrow"], default="csv")
    p.add_argument("--rate", type=float, default=None, metavar="EV_PER_S", help="throttle (default: as fast as possible)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="events (generator default 1,000,000)")
    p.add_argument("--batch-size", type=int, default=4096, help="events per Arrow message (and per read)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (jobs/click_stream*.yaml use 7)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_produce)

    b = sub.add_parser("broker", help="a local Kafka-protocol broker (tansu) for development")
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--state", default="runs/broker.json", help="PID/address file")
    b.add_argument("--topics", default=None, help="start: comma-separated topics to create")
    b.add_argument("--durable", default=None, metavar="DIR",
                   help="start: keep topics, messages and group offsets in DIR (survives a killed broker)")
    b.set_defaults(func=_cmd_broker)
