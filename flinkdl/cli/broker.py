"""``flinkdl broker start|stop|status``: a local Kafka-protocol broker (:mod:`flinkdl.devtools.broker`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_broker(args: argparse.Namespace) -> int:
    from flinkdl.devtools import broker

    state = Path(args.state)
    if args.action == "start":
        b = broker.start_detached(state, Path(args.durable) if args.durable else None)
        if args.topics:
            broker.create_topics(b.bootstrap, args.topics.split(","))
        print(b.bootstrap)
    elif args.action == "stop":
        print("stopped" if broker.stop_detached(state) else "no broker running")
    else:
        found = broker.read_state(state)
        if found is None:
            print("no broker running")
            return 1
        store = {"durable": str(found.store.root), "store_pid": found.store.pid} if found.store else {}
        print(json.dumps({"pid": found.pid, "bootstrap": found.bootstrap} | store))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``broker``."""
    b = sub.add_parser("broker", help="a local Kafka-protocol broker (tansu) for development")
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--state", default="runs/broker.json", help="PID/address file")
    b.add_argument("--topics", default=None, help="start: comma-separated topics to create")
    b.add_argument("--durable", default=None, metavar="DIR",
                   help="start: keep topics, messages and group offsets in DIR (survives a killed broker)")
    b.set_defaults(func=_cmd_broker)
