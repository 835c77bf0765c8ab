"""Raw TensorFlow ceiling: train a model from in-memory numpy batches, no framework around it.

    python bench/raw_tf.py                      # lr, fm, deepfm; 26+2 id fields, 26 dense, 2**22 buckets
    python bench/raw_tf.py --models deepfm --rows 400000 --batch 4096 --threads 2
    python bench/raw_tf.py --models deepfm --dim 16 --set field_weights=true --set micro_batch_rows=512

Rows/s counts every batch after the first (which pays for tracing); AUC is prequential
(each batch scored before the model trains on it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flinkdl.config.loader import apply_overrides
from flinkdl.config.schema import ModelConfig
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model


def raw_tf_ceiling(
    model_cfg: ModelConfig,
    layout: FeatureLayout,
    ids: np.ndarray,
    dense: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
) -> dict:
    """Train a fresh ``model_cfg`` model on the rows in order; return throughput and prequential AUC."""
    ids = np.ascontiguousarray(ids, np.int64)
    dense = np.ascontiguousarray(dense, np.float32)
    labels = np.ascontiguousarray(labels, np.float32)
    model = build_model(layout, model_cfg)
    n = len(labels)
    scores = np.empty(n, np.float32)
    t0 = c0 = 0.0
    timed_rows = 0
    for i, start in enumerate(range(0, n, batch_size)):
        if i == 1:
            t0, c0 = time.perf_counter(), time.process_time()
        sl = slice(start, start + batch_size)
        scores[sl] = model.predict_then_train(ids[sl], dense[sl], labels[sl]).numpy()
        if i >= 1:
            timed_rows += len(scores[sl])
    seconds = time.perf_counter() - t0 if timed_rows else 0.0
    cpu_seconds = time.process_time() - c0 if timed_rows else 0.0
    return {
        "model": model_cfg.name,
        "rows": n,
        "steps": model.version,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # process CPU time: less sensitive to other load than wall time
        "rows_per_s": timed_rows / seconds if seconds > 0 else float("nan"),
        "auc": auc_from_arrays(labels, scores),
        "scores": scores,  # prequential: each made before the model trained on its event
    }


def synthetic(rows: int, layout: FeatureLayout, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Criteo-like random data: per-field log-uniform vocabularies (10..1e6, heavy heads), hashed
    into ``layout.buckets``; labels from a hidden logistic model on 8 fields + 1 dense column."""
    rng = np.random.default_rng(seed)
    vocab = np.exp(rng.uniform(np.log(10), np.log(1e6), layout.n_ids))
    raw = np.floor(vocab[None, :] ** rng.random((rows, layout.n_ids))).astype(np.uint64)
    field = np.arange(layout.n_ids, dtype=np.uint64)[None, :]
    mixed = (raw * np.uint64(0x9E3779B97F4A7C15) + field * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(17)
    ids = (mixed % np.uint64(layout.buckets)).astype(np.int64)
    dense = np.log1p(rng.exponential(3.0, (rows, layout.n_dense))).astype(np.float32)
    hidden = ((mixed[:, :8] >> np.uint64(7)) % np.uint64(1000)).astype(np.float32) / 1000 - 0.5
    logit = 1.6 * hidden.sum(axis=1) - 1.0 + (0.5 * (dense[:, 0] - 1.0) if layout.n_dense else 0.0)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return ids, dense, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["lr", "fm", "deepfm"])
    p.add_argument("--rows", type=int, default=50 * 4096)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--bits", type=int, default=22)
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--ids", type=int, default=26 + 2)
    p.add_argument("--dense", type=int, default=26)
    p.add_argument("--optimizer", default="adagrad")
    p.add_argument("--threads", type=int, default=0, help="intra/inter-op threads; 0 = TF default")
    p.add_argument("--set", action="append", default=[], help="a model config key, e.g. field_weights=true")
    a = p.parse_args()
    if a.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    layout = FeatureLayout(n_ids=a.ids, n_dense=a.dense, buckets=1 << a.bits)
    ids, dense, labels = synthetic(a.rows, layout)
    print(
        f"rows={a.rows} batch={a.batch} buckets=2**{a.bits} dim={a.dim} ids={a.ids} dense={a.dense} "
        f"optimizer={a.optimizer} ctr={labels.mean():.3f} {' '.join(a.set)}"
    )
    for name in a.models:
        doc = {"name": name, "embedding_dim": a.dim, "optimizer": {"name": a.optimizer}}
        cfg = ModelConfig.model_validate(apply_overrides(doc, a.set))
        r = raw_tf_ceiling(cfg, layout, ids, dense, labels, a.batch)
        ms = 1000 * a.batch / r["rows_per_s"]
        print(
            f"{name:8s} {r['rows_per_s']:>10,.0f} rows/s  {ms:6.1f} ms/batch  "
            f"{r['cpu_seconds'] / r['seconds']:.2f} cores busy  prequential AUC {r['auc']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
