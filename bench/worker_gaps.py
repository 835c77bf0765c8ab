"""The TF worker's CPU per event when its input comes back to back vs with the client busy between
batches (the worker idle: what a feed without make-ahead does), one run, the same worker process.

    PYTHONPATH=. python bench/worker_gaps.py [--model deepfm] [--batches 50] [--gap-ms 15]

``b2b``: the next batch is sent as the predictions come back; ``busy``: the client computes
``--gap-ms`` before sending it; ``sleep``: the client sleeps that long.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from flinkdl.config.loader import load_config
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.generate import BatchGenerator
from flinkdl.worker.supervisor import WorkerSupervisor

WARM = 10


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deepfm")
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--gap-ms", type=float, default=15.0)
    args = p.parse_args()
    cfg = load_config("jobs/click_stream.yaml", [f"model.name={args.model}", "sinks.predictions=null",
                                                 f"job.run_dir={tempfile.mkdtemp()}"])
    gen = BatchGenerator(cfg.source.generator, FeatureMaker.from_config(cfg))
    schema = FeatureLayout.from_config(cfg.features).schema()
    payloads = [gen.make(i).payload for i in range(args.batches)]
    rows = [unpack(x, schema).num_rows for x in payloads]
    gap = args.gap_ms / 1000
    sup = WorkerSupervisor(cfg, 0)
    sup.start()
    try:
        assert sup.pid is not None
        for x, n in zip(payloads[:WARM], rows[:WARM], strict=True):
            sup.process(x, n)
        out: dict[str, list[float]] = {"b2b": [], "busy": [], "sleep": []}
        events = sum(rows[WARM:])
        for _ in range(3):
            for mode in out:
                c0 = cpu_s(sup.pid)
                for x, n in zip(payloads[WARM:], rows[WARM:], strict=True):
                    sup.process(x, n)
                    t = time.perf_counter()
                    if mode == "sleep":
                        time.sleep(gap)
                    while mode == "busy" and time.perf_counter() - t < gap:
                        pass
                out[mode].append(1e6 * (cpu_s(sup.pid) - c0) / events)
                print(mode, f"{out[mode][-1]:.2f} worker CPU µs/event", flush=True)
    finally:
        sup.stop()
    best = {k: min(v) for k, v in out.items()}
    print("worker CPU / back to back:", {k: round(v / best["b2b"], 3) for k, v in best.items()})
    print(json.dumps({"worker_gaps": out}))


if __name__ == "__main__":
    main()
