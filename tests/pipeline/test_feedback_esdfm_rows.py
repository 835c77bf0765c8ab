"""es_dfm's messages through OrderedFeatures without Flink: each kept row's weight column is its own code."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from flinkdl.config.loader import load_config
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.letters import decode_letters
from flinkdl.feedback.esdfm_rows import encode_code, job_layout, split_weight_column
from flinkdl.pipeline.feedback import OrderedFeatures

JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_feedback.yaml"
T = 1_700_000_000_000


def _key(tt: int, eid: int, rank: int) -> bytes:  # feedback_sql.sort_key_sql's key
    return f"{tt:016d}{eid:020d}{rank}".encode()


def _op(tmp_path: Path, *overrides: str) -> OrderedFeatures:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "source.max_batch_rows=2", *overrides])
    op = OrderedFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    return op


def _imp(eid: int, label: object = None) -> bytes:
    body = {"event_id": eid, "ts": T + eid, "C1": eid, "I1": 0.5}
    return json.dumps(body if label is None else {**body, "label": label}).encode()


def test_es_dfm_rows_carry_their_elapsed_time_and_mark_in_the_weight_column(tmp_path):
    op = _op(tmp_path, "feedback.strategy=es_dfm")
    schema = job_layout(load_config(JOB, [f"job.run_dir={tmp_path}", "feedback.strategy=es_dfm"])).schema()
    # (known time, id, rank, elapsed, real negative, body), given out of order: the operator sorts
    msgs = [
        (T + 9_000, 3, 2, 40, False, _imp(3, 1)),  # a delayed positive, observed 40 ms late
        (T + 1, 1, 0, 0, False, _imp(1)),  # served
        (T + 1, 1, 1, 0, False, _imp(1, 0)),  # its fake negative
        (T + 2, 2, 1, 7, False, _imp(2, "x")),  # a bad label: dead-lettered, its code dropped with it
        (T + 99_000, 4, 1, 25, True, _imp(4, 0)),  # a real negative
    ]
    element = [_key(tt, e, r) + encode_code(el, real) + body for tt, e, r, el, real, body in msgs]
    envs = [Envelope.of(row) for row in op.flat_map([element, len(element)])]
    batches = [unpack(e.payload, schema) for e in envs]
    rows = pa.Table.from_batches(batches)
    assert rows.column("event_id").to_pylist() == [1, 1, 3, 4]  # sorted by key; the bad row gone
    elapsed, real = split_weight_column(rows.column("weight").to_numpy())
    assert elapsed.tolist() == [0, 0, 40, 25] and real.tolist() == [False, False, False, True]
    label = rows.column("label").to_numpy(zero_copy_only=False)
    assert np.isnan(label[0]) and label[1:].tolist() == [0, 1, 0]
    assert [d["reason"] for e in envs for d in decode_letters(e.dead_letters).dead] == ["label_invalid"]
    assert [b.num_rows for b in batches] == [2, 1, 1]  # source.max_batch_rows pieces keep their codes


def test_other_strategies_read_no_code(tmp_path):
    op = _op(tmp_path)  # fake_negative: the key only, the unweighted layout
    assert op.codes is None and op.maker.weights is None
    envs = [Envelope.of(r) for r in op.flat_map([[_key(T, 1, 0) + _imp(1)], 1])]
    schema = job_layout(load_config(JOB, [f"job.run_dir={tmp_path}"])).schema()
    assert "weight" not in schema.names and unpack(envs[0].payload, schema).column("event_id").to_pylist() == [1]


def test_the_featurized_rows_go_through_the_worker_step_under_es_dfm(tmp_path):
    """The featurizer's weighted batch as the worker reads it, one step with EsDfmHook (no Flink, no process)."""
    from flinkdl.config.base import section
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model
    from flinkdl.worker.feed import batch_of
    from flinkdl.worker.hooks.esdfm import EsDfmHook
    from flinkdl.worker.process import run_step

    sets = ["feedback.strategy=es_dfm", "model.name=lr", "features.hash_bits=10", "feedback.es_dfm.warmup_labels=0"]
    op = _op(tmp_path, *sets, "source.max_batch_rows=64")
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", *sets])
    layout = job_layout(cfg)
    msgs = [(T + 1, 1, 0, 0, False, _imp(1)), (T + 1, 1, 1, 0, False, _imp(1, 0)),
            (T + 9_000, 3, 2, 0, False, _imp(3, 1)), (T + 99_000, 4, 1, 0, True, _imp(4, 0))]
    element = [_key(tt, e, r) + encode_code(el, real) + body for tt, e, r, el, real, body in msgs]
    (env,) = [Envelope.of(row) for row in op.flat_map([element, len(element)])]
    rb = unpack(env.payload, layout.schema())
    batch = batch_of(rb, layout)
    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    hook = EsDfmHook(FeatureLayout.from_config(cfg.features), section(cfg.feedback, "feedback").es_dfm)
    pred = run_step(model, [hook], batch)
    assert pred.trained == 2 and len(pred.scores.numpy()) == 4  # the fake negative and the positive
    assert batch.train is not None and batch.train.tolist() == [False, True, True, False]
    assert hook.aux.seen.tolist() == [[1, 1], [1, 1]]  # dp and rn learnt from the positive and the real negative
    assert model.version == 1
