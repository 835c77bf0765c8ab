"""``flinkdl ps serve|start|export|import``: the long-lived parameter server (one process, or
``start``: a sharded one of several), its SavedModel export and warm start."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading


def _cmd_serve(args: argparse.Namespace) -> int:
    from flinkdl.ps.auth import ENV_VARS, load_tokens
    from flinkdl.ps.errors import PsError
    from flinkdl.ps.server import build_server, serve_forever

    try:
        if args.token is not None:
            raise PsError(f"--token puts the secret in every process listing: set {ENV_VARS['write']} "
                          "(or use --token-file) instead")
        tokens = load_tokens(os.environ, args.token_file)
        cluster = [a.strip() for a in args.cluster.split(",")] if args.cluster else None
        server = build_server(args.host, args.port, args.checkpoint_dir, tokens, args.shards, args.tls_cert,
                              args.tls_key, args.retain, args.compact_after, args.metrics_port, args.insecure,
                              cluster, args.shard_index)
    except PsError as e:
        print(f"flinkdl ps serve: {e}", file=sys.stderr)
        return 2
    serve_forever(server)
    os._exit(0)  # Flight/gRPC threads may still hold a client's stream: committed state is on disk


def _cmd_start(args: argparse.Namespace) -> int:
    from flinkdl.ps.local import start_cluster, stop_servers

    if args.checkpoint_dir is None:
        print("flinkdl ps start: --checkpoint-dir is needed (shared by every shard)", file=sys.stderr)
        return 2
    ports = [args.port + k for k in range(args.shards)]
    extra = ["--retain", str(args.retain), "--compact-after", str(args.compact_after)]
    if args.token_file:
        extra += ["--token-file", args.token_file]
    try:
        procs, address = start_cluster(args.host, ports, args.checkpoint_dir, extra)
    except RuntimeError as e:
        print(f"flinkdl ps start: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"address": address, "pids": [p.pid for p in procs]}), flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        if any(p.poll() is not None for p in procs):
            print("flinkdl ps start: a shard exited; stopping the others", file=sys.stderr)
            break
    stop_servers(procs)
    return 0


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


def _cmd_import(args: argparse.Namespace) -> int:
    from flinkdl.config.loader import load_config
    from flinkdl.ps.errors import PsError
    from flinkdl.publish.warm_start import import_model

    cfg = load_config(args.config, args.set)
    try:
        out = import_model(args.dir, cfg.features, cfg.model, cfg.ps, force=args.force)
    except PsError as e:
        print(f"flinkdl ps import: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ps serve``, ``ps start``, ``ps export`` and ``ps import``."""
    ps = sub.add_parser("ps", help="the long-lived parameter server")
    psub = ps.add_subparsers(dest="ps_command", required=True)
    s = psub.add_parser("serve", help="run a parameter server (Arrow Flight) until stopped")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    s.add_argument("--port", type=int, default=8815)
    s.add_argument("--checkpoint-dir", default=None, metavar="URI",
                   help="directory or pyarrow filesystem URI for versions (none = in memory, no commits)")
    s.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: secrets never on a command line
    s.add_argument("--token-file", default=None, metavar="YAML",
                   help="role -> token mapping (read, write, admin); or set FLINKDL_PS_TOKEN (write), "
                        "FLINKDL_PS_READ_TOKEN, FLINKDL_PS_ADMIN_TOKEN")
    s.add_argument("--insecure", action="store_true",
                   help="serve a non-loopback --host without any token (anyone who reaches it can write)")
    s.add_argument("--shards", type=int, default=1, help="partitions in this one process")
    s.add_argument("--cluster", default=None, metavar="ADDR,ADDR,...",
                   help="a sharded PS of several processes: every shard's address, in shard order")
    s.add_argument("--shard-index", type=int, default=None, metavar="K", help="this process's place in --cluster")
    s.add_argument("--metrics-port", type=int, default=None, metavar="P",
                   help="serve Prometheus /metrics on this port (same host as --host); default off")
    s.add_argument("--tls-cert", default=None, metavar="PEM")
    s.add_argument("--tls-key", default=None, metavar="PEM")
    s.add_argument("--retain", type=int, default=5, help="committed versions kept")
    s.add_argument("--compact-after", type=int, default=8, help="deltas before a background compaction")
    s.set_defaults(func=_cmd_serve)
    st = psub.add_parser("start", help="a sharded PS on this host: N `ps serve` processes on ports P..P+N-1")
    st.add_argument("--shards", type=int, required=True)
    st.add_argument("--host", default="127.0.0.1")
    st.add_argument("--port", type=int, default=8815, help="shard 0's port; shard k listens on port + k")
    st.add_argument("--checkpoint-dir", default=None, metavar="URI", help="shared by every shard (required)")
    st.add_argument("--token-file", default=None, metavar="YAML")
    st.add_argument("--retain", type=int, default=5)
    st.add_argument("--compact-after", type=int, default=8)
    st.set_defaults(func=_cmd_start)
    e = psub.add_parser("export", help="write a TensorFlow SavedModel of a committed version")
    e.add_argument("version", help="version number or 'latest'")
    e.add_argument("dir", help="output directory")
    e.add_argument("--config", required=True, help="the job config the model was trained with")
    e.add_argument("--checkpoint-dir", required=True, metavar="URI")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e.set_defaults(func=_cmd_export)
    i = psub.add_parser("import", help="warm start: load an exported model (a SavedModel of the job's model "
                        "class) into the server at ps.address and commit it")
    i.add_argument("dir", help="the SavedModel directory (a published version, or flinkdl ps export's output)")
    i.add_argument("--config", required=True, help="the job config (model class, features, ps.address)")
    i.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    i.add_argument("--force", action="store_true", help="import even if the server has committed versions")
    i.set_defaults(func=_cmd_import)
