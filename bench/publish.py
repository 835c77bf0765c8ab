"""Cost of publishing one version, against one training step of the same model, same run.

    python bench/publish.py                          # jobs/click_stream.yaml's DeepFM, hash_bits 18 20 22
    python bench/publish.py --hash-bits 16 18 --formats saved_model

Per table size: the baseline is the median ``predict_then_train`` step on a 4096-event generator
batch; then the snapshot (the copy of the variables the step waits for), the SavedModel write,
the ONNX conversion + write and the atomic rename into ``BASE/<version>/``
(:class:`flinkdl.publish.publisher.Publisher`), each as seconds and as steps; and the sizes on
disk. The PS commit → on disk latency of a running job is what the e2e test prints
(tests/publish/test_publish_e2e.py); this isolates the export.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flinkdl.config.loader import load_config
from flinkdl.publish import layout
from flinkdl.publish.publisher import ONNX_FILE, Publisher, dir_bytes, snapshot
from flinkdl.sources.generator import ClickStream
from tests.publish.helpers import featurized, model_of


def one(bits: int, formats: list[str], steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        cfg = load_config(Path("jobs/click_stream.yaml"), [f"features.hash_bits={bits}", f"publish.dir={tmp}",
                                                           f"publish.formats=[{', '.join(formats)}]"])
        model = model_of(cfg)
        gen = ClickStream(seed=7)
        batches = [featurized(cfg, gen.batch(i, 4096)) for i in range(steps + 1)]
        model.predict_then_train(batches[0].ids, batches[0].dense, batches[0].label)  # trace
        times = []
        for b in batches[1:]:
            t0 = time.perf_counter()
            model.predict_then_train(b.ids, b.dense, b.label).numpy()
            times.append(time.perf_counter() - t0)
        step = float(np.median(times))
        t0 = time.perf_counter()
        snap = snapshot(model, 1, {"metrics": {"auc": None}})
        t_snap = time.perf_counter() - t0
        pub = Publisher(cfg.publish, cfg.features, cfg.model)
        t0 = time.perf_counter()
        path = pub.write(snap)
        t_first = time.perf_counter() - t0  # includes tracing the signatures once
        snap2 = snapshot(model, 2, {"metrics": {"auc": None}})
        t0 = time.perf_counter()
        path = pub.write(snap2)
        t_write = time.perf_counter() - t0
        onnx = path / ONNX_FILE
        out = {"hash_bits": bits, "step_s": step, "snapshot_s": t_snap, "first_publish_s": t_first,
               "publish_s": t_write, "snapshot_steps": t_snap / step, "publish_steps": t_write / step,
               "bytes": dir_bytes(path), "onnx_bytes": onnx.stat().st_size if onnx.exists() else 0,
               "versions": layout.versions(tmp)}
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hash-bits", type=int, nargs="+", default=[18, 20, 22])
    ap.add_argument("--formats", nargs="+", default=["saved_model", "onnx"])
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    rows = [one(b, a.formats, a.steps) for b in a.hash_bits]
    print("| hash_bits | step (baseline) | snapshot | = steps | publish (both formats) | = steps | on disk | ONNX |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['hash_bits']} | {r['step_s'] * 1e3:.0f} ms | {r['snapshot_s'] * 1e3:.0f} ms | "
              f"{r['snapshot_steps']:.2f} | {r['publish_s']:.2f} s | {r['publish_steps']:.0f} | "
              f"{r['bytes'] / 1e6:.0f} MB | {r['onnx_bytes'] / 1e6:.0f} MB |")
    print(json.dumps({"bench": "publish", "formats": a.formats, "rows": rows}))


if __name__ == "__main__":
    main()
