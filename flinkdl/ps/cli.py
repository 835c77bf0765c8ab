"""``flinkdl ps serve`` and ``flinkdl ps export``: sub-commands wired into :mod:`flinkdl.cli`."""

from __future__ import annotations

import argparse
import os
import sys


def _cmd_serve(args: argparse.Namespace) -> int:
    from flinkdl.ps.server import build_server, serve_forever

    token = args.token or os.environ.get("FLINKDL_PS_TOKEN") or None
    server = build_server(args.host, args.port, args.checkpoint_dir, token, args.shards, args.tls_cert,
                          args.tls_key, args.retain, args.compact_after, args.metrics_port)
    serve_forever(server)
    os._exit(0)  # Flight/gRPC threads may still hold a client's stream: committed state is on disk


def _cmd_export(args: argparse.Namespace) -> int:
    from flinkdl.config.loader import load_config
    from flinkdl.ps.errors import PsError
    from flinkdl.ps.export import export_saved_model

    cfg = load_config(args.config, args.set)
    try:
        version = None if args.version == "latest" else int(args.version)
        out = export_saved_model(cfg, args.checkpoint_dir, version, args.dir)
    except (PsError, ValueError) as e:
        print(f"flinkdl ps export: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``ps serve`` and ``ps export`` to the ``flinkdl`` sub-command parser."""
    ps = sub.add_parser("ps", help="the long-lived parameter server")
    psub = ps.add_subparsers(dest="ps_command", required=True)
    s = psub.add_parser("serve", help="run a parameter server (Arrow Flight) until stopped")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    s.add_argument("--port", type=int, default=8815)
    s.add_argument("--checkpoint-dir", default=None, metavar="URI",
                   help="directory or pyarrow filesystem URI for versions (none = in memory, no commits)")
    s.add_argument("--token", default=None, help="refuse calls without this token (or FLINKDL_PS_TOKEN)")
    s.add_argument("--shards", type=int, default=1)
    s.add_argument("--metrics-port", type=int, default=None, metavar="P",
                   help="serve Prometheus /metrics on this port (same host as --host); default off")
    s.add_argument("--tls-cert", default=None, metavar="PEM")
    s.add_argument("--tls-key", default=None, metavar="PEM")
    s.add_argument("--retain", type=int, default=5, help="committed versions kept")
    s.add_argument("--compact-after", type=int, default=8, help="deltas before a background compaction")
    s.set_defaults(func=_cmd_serve)
    e = psub.add_parser("export", help="write a TensorFlow SavedModel of a committed version")
    e.add_argument("version", help="version number or 'latest'")
    e.add_argument("dir", help="output directory")
    e.add_argument("--config", required=True, help="the job config the model was trained with")
    e.add_argument("--checkpoint-dir", required=True, metavar="URI")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e.set_defaults(func=_cmd_export)
