"""The benchmark streams, featurized for our models and as Vowpal Wabbit text for the anchors.

Two streams, both in event order: the built-in drift stream (``ClickStream`` through the job
config's generator section) and MovieLens-100k (``../shared/data``, stably sorted by timestamp,
label rating >= 4 through the job config). Our models see them featurized by the job's own
``Featurizer``; the anchors (Vowpal Wabbit, and River through the same file) see the same raw
events as VW text, with field names so that they hash the features themselves:
``1 |c a10001234 b20000017 ... |n I1:0.6931 m3 ...`` (label -1/1; ID values prefixed with a
letter per field so that fields do not collide; a string value holding a bag, ``a|b`` or
space-separated genres, gives one feature per element; numerics as ``log1p``, as our featurizer does; a
missing numeric is an indicator feature ``m<j>``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.transform import Featurizer
from flinkdl.sources.generator import ClickStream

#: ``../shared/data`` beside the repository, or ``$FLINKDL_DATA`` (a checkout elsewhere)
DATA = Path(os.environ.get("FLINKDL_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
MOVIELENS = DATA / "movielens-100k" / "ml-100k.inter"
#: per-model settings over the job config (LR: its own tuned optimizer, one step a batch, and one TF thread per op,
#: which the job files' ``intra_op_threads: 2`` for DeepFM would otherwise override; docs/BENCHMARKS.md)
MODEL_SETTINGS: dict[str, list[str]] = {
    "lr": ["model.dense_optimizer=null", "model.optimizer.learning_rate=0.05", "model.micro_batch_rows=null",
           "worker.intra_op_threads=1"],
}


def generator_raw(cfg: JobConfig, events: int, chunk: int = 65536) -> Iterator[pa.RecordBatch]:
    """The generator's first ``events`` raw events (same bytes as the job's, any chunking)."""
    stream = ClickStream.from_config(cfg.source.generator)
    for i in range(-(-events // chunk)):
        yield stream.batch(i, chunk).slice(0, min(chunk, events - i * chunk))


def movielens_raw(path: Path = MOVIELENS) -> pa.Table:
    """MovieLens ``.inter`` as a table, stably sorted by timestamp (the stream's order)."""
    t = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t"))
    return t.take(pc.sort_indices(t, [("timestamp:float", "ascending")]))


def raw_batches(cfg: JobConfig, dataset: str, events: int | None) -> list[pa.RecordBatch]:
    """Raw events of ``dataset`` (``drift`` or ``movielens``), at most ``events`` of them."""
    if dataset == "drift":
        return list(generator_raw(cfg, events or cfg.source.generator.events))
    t = movielens_raw()
    return t.slice(0, events or t.num_rows).to_batches()


def featurize(cfg: JobConfig, raw: list[pa.RecordBatch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw batches → (ids int64 [N, F], dense float32 [N, D], labels float32 [N]) via the job's featurizer."""
    fz, lay = Featurizer(cfg.features), FeatureLayout.from_config(cfg.features)
    parts, pos = [], 0
    for b in raw:
        feats, dead = fz.transform(b, position_offset=pos)
        if dead:
            raise ValueError(f"unexpected dead letters in a benchmark stream: {dead[:3]}")
        pos += b.num_rows
        parts.append(np.stack([c.to_numpy() for c in feats.columns[1:]], axis=1))
    m = np.concatenate(parts)
    return m[:, 1:1 + lay.n_ids].astype(np.int64), m[:, 1 + lay.n_ids:].astype(np.float32), m[:, 0]


def _columns(cfg: JobConfig, b: pa.RecordBatch) -> tuple[np.ndarray, list[pa.Array]]:
    """Labels (0/1) and one string array of feature tokens per raw field (null = no feature)."""
    f = cfg.features
    y = pc.cast(b.column(f.label.column), pa.float64()).to_numpy(zero_copy_only=False)
    labels = (y >= f.label.threshold) if f.label.threshold is not None else y > 0.5
    toks = []
    for k, c in enumerate(f.categorical):  # a bag ('a|b', or genres 'Action Comedy') is one feature per element
        prefix = chr(97 + k % 26) * (1 + k // 26)
        v = pc.cast(b.column(c.name), pa.string())
        if c.type == "string":
            v = pc.replace_substring_regex(pc.replace_substring(v, ":", "_"), r"[| ]+", " " + prefix)
        toks.append(pc.binary_join_element_wise(prefix, v, ""))
    for j, n in enumerate(f.numeric, 1):
        x = pc.cast(b.column(n.name), pa.float64())
        v = pc.round(pc.multiply(pc.sign(x), pc.log1p(pc.abs(x))), 4)
        tok = pc.binary_join_element_wise(f"I{j}:", pc.cast(v, pa.string()), "")
        toks.append(pc.if_else(pc.equal(v, 0.0), pa.scalar(None, pa.string()), tok))
        toks.append(pc.if_else(pc.is_null(x), pa.scalar(f"m{j}"), pa.scalar(None, pa.string())))
    return labels.astype(np.int8), toks


def write_vw(cfg: JobConfig, raw: list[pa.RecordBatch], path: Path) -> tuple[int, np.ndarray]:
    """Write ``raw`` as VW text to ``path``; returns (events, labels 0/1)."""
    f, n_cat, all_labels = cfg.features, len(cfg.features.categorical), []
    with open(path, "w") as out:
        for b in raw:
            labels, toks = _columns(cfg, b)
            all_labels.append(labels)
            head = pa.array(np.where(labels, "1 |c", "-1 |c"))
            # an empty categorical field is no feature (null_handling skip), not a null line
            cats = pc.binary_join_element_wise(head, *toks[:n_cat], " ", null_handling="skip")
            if f.numeric:
                nums = [pc.binary_join_element_wise(" ", t, "").fill_null("") for t in toks[n_cat:]]
                cats = pc.binary_join_element_wise(cats, " |n", *nums, "")
            out.write("\n".join(cats.to_pylist()))
            out.write("\n")
    labels = np.concatenate(all_labels)
    return len(labels), labels
