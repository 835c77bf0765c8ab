"""``flinkdl publish list|rollback|resume``: the published versions TF Serving (or ``flinkdl serve``) serves.

TF Serving serves the highest version number under the base directory, so ``rollback VERSION``
moves every higher version into ``rolled_back/`` (a name TF Serving ignores) and writes ``HOLD``,
which keeps the publisher from publishing a new (higher) version until ``resume``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _base(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        return Path(args.dir)
    from flinkdl.config.loader import load_config

    return load_config(args.config, args.set).publish.dir


def _cmd_list(args: argparse.Namespace) -> int:
    from flinkdl.publish import layout
    from flinkdl.publish.publisher import dir_bytes

    base = _base(args)
    served, held = layout.latest(base), layout.held(base)
    rows = []
    for v in layout.versions(base):
        m = layout.manifest(base, v)
        rows.append({"version": v, "served": v == served, "auc": m.get("metrics", {}).get("auc"),
                     "calibration": m.get("metrics", {}).get("calibration"), "formats": m.get("formats"),
                     "published_at": m.get("published_at"), "bytes": dir_bytes(base / str(v))})
    if args.json:
        print(json.dumps({"dir": str(base), "served": served, "held": held, "versions": rows,
                          "refused": len(layout.refusals(base))}))
        return 0
    print(f"{base}: {len(rows)} published, serving {served}" + (f" (held at {held})" if held is not None else ""))
    for r in rows:
        auc = "-" if r["auc"] is None else f"{r['auc']:.4f}"
        cal = "-" if r["calibration"] is None else f"{r['calibration']:.3f}"
        print(f"{'*' if r['served'] else ' '} {r['version']:>8}  auc {auc}  calibration {cal}  "
              f"{','.join(r['formats'] or [])}  {r['bytes'] / 1e6:.1f} MB")
    print(f"refused by the gate: {len(layout.refusals(base))} (refused.jsonl)")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from flinkdl.publish import layout

    base = _base(args)
    try:
        moved = layout.rollback(base, args.version, hold=not args.no_hold)
    except ValueError as e:
        print(f"flinkdl publish rollback: {e}", file=sys.stderr)
        return 2
    print(f"serving {args.version}; moved {moved} to {base / layout.ROLLED_BACK}"
          + ("" if args.no_hold else "; publishing held until `flinkdl publish resume`"))
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from flinkdl.publish import layout

    base = _base(args)
    print("publishing resumed" if layout.resume(base) else "publishing was not held")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``publish list``, ``publish rollback`` and ``publish resume``."""
    p = sub.add_parser("publish", help="published model versions (TF Serving layout, docs/PUBLISH.md)")
    psub = p.add_subparsers(dest="publish_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        where = q.add_mutually_exclusive_group(required=True)
        where.add_argument("--dir", default=None, help="the published base directory")
        where.add_argument("--config", default=None, help="a job config: its publish.dir")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    q = psub.add_parser("list", help="published versions, the served one marked *")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_list)
    q = psub.add_parser("rollback", help="serve VERSION again: move the newer versions aside, hold publishing")
    q.add_argument("version", type=int)
    common(q)
    q.add_argument("--no-hold", action="store_true", help="let the publisher go on publishing (newer ones win)")
    q.set_defaults(func=_cmd_rollback)
    q = psub.add_parser("resume", help="let the publisher publish again after a rollback")
    common(q)
    q.set_defaults(func=_cmd_resume)
