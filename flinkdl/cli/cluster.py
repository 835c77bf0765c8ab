"""``flinkdl cluster start|stop|status``, ``submit``, ``resume``, ``jobs``, ``stop``: a standalone Flink cluster."""

from __future__ import annotations

import argparse
import json
import time

from flinkdl.cli.run import add_flink_option
from flinkdl.cluster.standalone import LocalCluster
from flinkdl.preflight import check_flink

_DEFAULT_ROOT = "runs/cluster"


def _cluster(args: argparse.Namespace) -> LocalCluster:
    return LocalCluster(args.cluster_dir, args.rest)


def _cmd_cluster(args: argparse.Namespace) -> int:
    c = _cluster(args)
    if args.action == "start":
        overview = c.start()
        print(f"cluster up at {c.rest.url}: {overview['taskmanagers']} TaskManager(s), "
              f"{overview['slots-total']} slots; conf {c.conf_dir}, logs {c.log_dir}")
    elif args.action == "stop":
        c.stop()
        print("cluster stopped")
    else:
        status = c.status()
        print(json.dumps(status, indent=2) if status else f"no cluster answers at {c.rest.url}")
        return 0 if status else 1
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    check_flink(args.rest)
    job_id = _cluster(args).submit(args.config, args.set, savepoint=getattr(args, "from_savepoint", None),
                                   parallelism=args.parallelism, flink=args.flink)
    print(job_id)
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    check_flink(args.rest)
    now = time.time() * 1000
    print(f"{'JOB ID':32}  {'NAME':20} {'STATE':10} {'UPTIME':>9}  LAST CHECKPOINT")
    for j in _cluster(args).rest.jobs():
        uptime = (now - j.start_time_ms) / 1000 if j.state == "RUNNING" else j.duration_ms / 1000
        cp = "-" if not j.last_checkpoint else f"#{j.last_checkpoint['id']} {j.last_checkpoint['path']}"
        print(f"{j.id:32}  {j.name[:20]:20} {j.state:10} {uptime:8.0f}s  {cp}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    check_flink(args.rest)
    print(_cluster(args).rest.stop_with_savepoint(args.job_id, args.savepoint))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cluster``, ``submit``, ``resume``, ``jobs`` and ``stop``."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cluster-dir", default=_DEFAULT_ROOT, help="conf, logs, checkpoints, savepoints")
        p.add_argument("--rest", default="http://127.0.0.1:8081", help="Flink REST address")

    p = sub.add_parser("cluster", help="start, stop or inspect a local standalone Flink cluster")
    p.add_argument("action", choices=["start", "stop", "status"])
    common(p)
    p.set_defaults(func=_cmd_cluster)

    for name, help_ in (("submit", "submit a job (flink run -pym flinkdl.pipeline) to the cluster"),
                        ("resume", "resume a job from a savepoint (offsets from Flink, model from the PS)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("config")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("-p", "--parallelism", type=int, default=None)
        add_flink_option(p)
        if name == "resume":
            p.add_argument("--from", dest="from_savepoint", required=True, metavar="SAVEPOINT")
        common(p)
        p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("jobs", help="list the cluster's jobs: id, name, state, uptime, last checkpoint")
    common(p)
    p.set_defaults(func=_cmd_jobs)

    p = sub.add_parser("stop", help="stop a job with a savepoint")
    p.add_argument("job_id")
    p.add_argument("--savepoint", required=True, metavar="DIR")
    common(p)
    p.set_defaults(func=_cmd_stop)
