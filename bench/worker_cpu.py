"""The TF worker's CPU per event, this tree's worker against another tree's, A/B in one run.

    PYTHONPATH=. python bench/worker_cpu.py --base /tmp/base [--model lr] [--ps off on] [--batches 60] \
        [--new-set worker.intra_op_threads=1]

No Flink: a :class:`WorkerSupervisor` per variant (``base``: the worker process started with
``PYTHONPATH=BASE``, e.g. ``git archive main flinkdl | tar -x -C /tmp/base``; ``new``: this tree) is fed the
same pre-made generator batches back to back, LR as ``bench/anchors.py`` runs it (whole 4096-row steps).
With ``--ps on`` each variant has its own ``flinkdl ps serve`` on 127.0.0.1. The variants alternate,
``--rounds`` times; the worker's CPU (user + system, from /proc) per event of the measured batches.
Every prediction batch of the two variants must be equal (scores bit for bit, or within ``--atol``;
versions): the run fails otherwise. Prints new/base ratios and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from streams import MODEL_SETTINGS
from worker_gaps import cpu_s

from flinkdl.config.loader import load_config
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.generate import BatchGenerator
from flinkdl.worker.supervisor import WorkerSupervisor

WARM = 10
ROOT = Path(__file__).resolve().parents[1]


def differ(a: pa.RecordBatch, b: pa.RecordBatch, atol: float) -> list[str]:
    """The columns of two prediction batches that differ (``score``: by more than ``atol``)."""
    out = []
    for f in a.schema.names:
        if f == "score" and atol > 0:
            if not np.allclose(a[f].to_numpy(), b[f].to_numpy(), rtol=0, atol=atol):
                out.append(f)
        elif not a[f].equals(b[f]):
            out.append(f)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="a tree holding the baseline's flinkdl/ package")
    p.add_argument("--model", default="lr")
    p.add_argument("--ps", nargs="+", default=["off"], choices=["off", "on"])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], help="more config overrides")
    p.add_argument("--new-set", nargs="*", default=[], help="config overrides of the new variant only")
    p.add_argument("--atol", type=float, default=0.0,
                   help="scores may differ by this much (0: bit for bit; e.g. model.xla_step=true's float rounding)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.ps.conftest import PsProcess

    tmp = Path(tempfile.mkdtemp())
    sets = [f"model.name={args.model}", *MODEL_SETTINGS.get(args.model, []), "sinks.predictions=null",
            f"job.run_dir={tmp}", *args.set]
    cfg = load_config(str(ROOT / "jobs/click_stream.yaml"), sets)
    gen = BatchGenerator(cfg.source.generator, FeatureMaker.from_config(cfg))
    schema = FeatureLayout.from_config(cfg.features).schema()
    payloads = [gen.make(i).payload for i in range(args.batches)]
    rows = [unpack(x, schema).num_rows for x in payloads]
    events = sum(rows[WARM:])
    trees = {"base": str(Path(args.base).resolve()), "new": str(ROOT)}
    out: dict[str, list[float]] = {}
    servers = []
    try:
        for ps in args.ps:
            sups: dict[str, WorkerSupervisor] = {}
            for name, tree in trees.items():
                extra = []
                if ps == "on":
                    servers.append(PsProcess(None))
                    # pushes by batch count alone: the two variants then push at the same steps (equal scores)
                    extra = ["ps.enabled=true", f"ps.address={servers[-1].address}", "ps.push_every_s=1e9"]
                c = load_config(str(ROOT / "jobs/click_stream.yaml"),
                                [*sets, *extra, f"job.run_dir={tmp / f'{name}-{ps}'}",
                                 *(args.new_set if name == "new" else [])])
                os.environ["PYTHONPATH"] = tree
                os.chdir(tree)  # ``python -m`` puts the working directory first on sys.path
                sups[name] = WorkerSupervisor(c, 0)
                sups[name].start()
                os.chdir(ROOT)
            os.environ["PYTHONPATH"] = str(ROOT)
            answers: dict[str, list] = {name: [] for name in sups}
            for name, sup in sups.items():
                for x, n in zip(payloads[:WARM], rows[:WARM], strict=True):
                    answers[name].append(sup.process(x, n))
            for _ in range(args.rounds):
                for name, sup in sups.items():
                    assert sup.pid is not None
                    c0 = cpu_s(sup.pid)
                    for x, n in zip(payloads[WARM:], rows[WARM:], strict=True):
                        answers[name].append(sup.process(x, n))
                    us = 1e6 * (cpu_s(sup.pid) - c0) / events
                    out.setdefault(f"{name}-ps-{ps}", []).append(us)
                    print(f"{name} ps {ps}: {us:.3f} worker CPU µs/event", flush=True)
            for sup in sups.values():
                sup.stop()
            diff = [(i, bad) for i, (a, b) in enumerate(zip(answers["base"], answers["new"], strict=True))
                    if (bad := differ(a[0], b[0], args.atol))]
            if diff:
                raise SystemExit(f"ps {ps}: the two workers' predictions differ: {diff[:5]}")
            how = f"within {args.atol:g}" if args.atol else "identical"
            print(f"ps {ps}: predictions {how} over {len(answers['new'])} batches", flush=True)
    finally:
        for s in servers:
            s.stop()
    best = {k: min(v) for k, v in out.items()}
    for ps in args.ps:
        print(f"ps {ps}: new / base worker CPU = {best[f'new-ps-{ps}'] / best[f'base-ps-{ps}']:.3f}")
    print(json.dumps({"worker_cpu": out, "best": best, "events": events}))


if __name__ == "__main__":
    main()
