"""EsDfmHook: the weight column → ES-DFM's loss weights, real negatives out of the step, the elapsed-time model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.config.esdfm import EsDfmConfig
from flinkdl.config.loader import load_config
from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.feedback.esdfm_rows import encode_code, weight_column
from flinkdl.models import build_model
from flinkdl.worker.hooks import Batch
from flinkdl.worker.hooks.esdfm import EsDfmHook
from flinkdl.worker.process import build_hooks, run_step

LAYOUT = FeatureLayout(n_ids=2, n_dense=1, buckets=64)
JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_feedback.yaml"
NAN = float("nan")
# served, a fake negative (e 0), a delayed positive (e 40 ms), a real negative (e 25 ms)
LABELS = [NAN, 0.0, 1.0, 0.0]
CODES = [encode_code(0, False), encode_code(0, False), encode_code(40, False), encode_code(25, True)]


def _batch() -> Batch:
    n = len(LABELS)
    ids = np.stack([np.arange(n) % 7, np.arange(n) % 5 + 10], axis=1).astype(np.int64)
    return Batch(tf.constant(np.arange(n, dtype=np.int64)), tf.constant(np.array(LABELS, np.float32)),
                 tf.constant(ids), tf.constant(np.linspace(0, 1, n, dtype=np.float32)[:, None]),
                 tf.constant(weight_column(CODES)))


def test_weights_in_closed_form_and_what_the_elapsed_time_model_learns(monkeypatch):
    hook = EsDfmHook(LAYOUT, EsDfmConfig())
    asked, learnt = [], {}
    monkeypatch.setattr(hook.aux, "predict", lambda ids, dense, e: (asked.append(e.tolist()) or
                                                                     (np.full(len(e), 0.2), np.full(len(e), 0.5))))
    monkeypatch.setattr(hook.aux, "train_dp", lambda ids, dense, e, y: learnt.update(dp=(ids[:, 0].tolist(),
                                                                                         e.tolist(), y.tolist())))
    monkeypatch.setattr(hook.aux, "train_rn", lambda ids, dense, e, y: learnt.update(rn=(ids[:, 0].tolist(),
                                                                                         e.tolist(), y.tolist())))
    batch = _batch()
    hook.before_step(batch)
    assert asked == [[0.0, 40.0]]  # p_dp, p_rn of the rows trained: the fake negative and the positive
    # w- = (1 + p_dp) p_rn = 0.6, w+ = 1 + p_dp = 1.2; the served row and the real negative are not trained
    assert np.allclose(np.asarray(batch.weight), [1.0, 0.6, 1.2, 1.0])
    assert batch.train is not None and batch.train.tolist() == [False, True, True, False]
    assert learnt == {}  # the elapsed-time model learns after the step
    hook.after_step(batch, None)  # type: ignore[arg-type]
    # the positive (delayed: dp 1, rn 0) and the real negative (dp 0, rn 1), at their own elapsed times
    assert learnt == {"dp": ([2, 3], [40.0, 25.0], [1.0, 0.0]), "rn": ([2, 3], [40.0, 25.0], [0.0, 1.0])}


def test_before_the_warmup_every_weight_is_1_and_the_model_counts_what_it_learnt():
    hook = EsDfmHook(LAYOUT, EsDfmConfig(warmup_labels=1))
    batch = _batch()
    hook.before_step(batch)
    assert np.asarray(batch.weight).tolist() == [1.0] * 4
    hook.after_step(batch, None)  # type: ignore[arg-type]
    assert hook.aux.seen.tolist() == [[1, 1], [1, 1]] and hook.aux.warm  # dp: 1 neg 1 pos; rn: 1 neg 1 pos
    batch = _batch()
    hook.before_step(batch)  # warm now: the weights come from the model
    w = np.asarray(batch.weight)
    assert w[0] == 1.0 and w[3] == 1.0 and 1.0 < w[2] < 2.0 and 0.0 < w[1] < 2.0


def test_the_worker_step_trains_the_weighted_rows_alone():
    cfg = ModelConfig(name="lr", seed=3)
    model, twin = build_model(LAYOUT, cfg), build_model(LAYOUT, cfg)
    hook = EsDfmHook(LAYOUT, EsDfmConfig(warmup_labels=0))
    batch = _batch()
    before = twin.predict(batch.ids, batch.dense).numpy()
    pred = run_step(model, [hook], batch)
    train, w = batch.train, np.asarray(batch.weight)
    assert train is not None and pred.trained == 2 and np.allclose(pred.scores.numpy(), before)
    ids, dense, labels = (np.asarray(x)[train] for x in (batch.ids, batch.dense, batch.label))
    twin.predict_then_train(ids, dense, labels, weights=w[train])  # the same step on the two rows alone
    for name, var in model.variables().items():
        assert np.array_equal(var.numpy(), twin.variables()[name].numpy()), name
    assert hook.aux.seen.sum() == 4  # dp and rn learnt from the positive and the real negative


def test_build_hooks_adds_the_hook_for_es_dfm_only(tmp_path):
    for strategy, has in (("es_dfm", True), ("fake_negative", False)):
        cfg = load_config(JOB, [f"job.run_dir={tmp_path}", f"feedback.strategy={strategy}", "model.name=lr",
                                "features.hash_bits=8"])
        model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
        hooks = build_hooks(cfg, model, 256, 0)
        assert any(isinstance(h, EsDfmHook) for h in hooks) == has, strategy


def test_serve_reads_the_weighted_layout_and_answers_every_row(tmp_path, monkeypatch):
    """The worker process's loop (serve) under es_dfm: one weighted feature batch in, its predictions out."""
    import socket
    import threading

    import pyarrow as pa

    from flinkdl.exchange.channel import pack
    from flinkdl.exchange.schema import PREDICTION_SCHEMA
    from flinkdl.feedback.esdfm_rows import job_layout
    from flinkdl.models.lr import LogisticRegression
    from flinkdl.worker.process import serve

    # this process's TensorFlow is initialised already: keep its threads (LR's own choice would set 1)
    monkeypatch.setattr(LogisticRegression, "intra_op_threads", 0)

    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "feedback.strategy=es_dfm", "model.name=lr",
                            "model.micro_batch_rows=null", "features.hash_bits=8", "worker.intra_op_threads=0"])
    layout = job_layout(cfg)
    n = len(LABELS)
    cols = [np.arange(n, dtype=np.int64), np.array(LABELS, np.float32)]
    cols += [(np.arange(n, dtype=np.int64) * (i + 1)) % layout.buckets for i in range(layout.n_ids)]
    cols += [np.full(n, 0.5, np.float32) for _ in range(layout.n_dense)]
    batch = pa.record_batch([*cols, weight_column(CODES)], schema=layout.schema())
    in_path, out_path = str(tmp_path / "in.sock"), str(tmp_path / "out.sock")
    srv_in, srv_out = (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2))
    srv_in.bind(in_path)
    srv_out.bind(out_path)
    srv_in.listen(1)
    srv_out.listen(1)
    got: list[pa.Table] = []

    def send() -> None:
        conn, _ = srv_in.accept()
        conn.sendall(layout.schema().serialize().to_pybytes() + pack(batch) + b"\xff\xff\xff\xff\0\0\0\0")
        conn.close()

    def receive() -> None:
        conn, _ = srv_out.accept()
        with conn.makefile("rb") as f:
            got.append(pa.ipc.open_stream(f).read_all())

    threads = [threading.Thread(target=send), threading.Thread(target=receive)]
    for t in threads:
        t.start()
    import gc

    assert serve(cfg, f"unix://{in_path}", out_path) == 1
    gc.unfreeze()  # serve froze the test process's heap
    for t in threads:
        t.join(timeout=30)
    srv_in.close()
    srv_out.close()
    (preds,) = got
    assert preds.schema == PREDICTION_SCHEMA and preds.column("event_id").to_pylist() == [0, 1, 2, 3]
    assert preds.column("label").to_pylist() == [None, 0.0, 1.0, 0.0]  # the real negative keeps its label: not served


def test_the_worker_supervisor_uses_the_weighted_layout_under_es_dfm_only(tmp_path):
    from flinkdl.worker.supervisor import WorkerSupervisor

    for strategy, weighted in (("es_dfm", True), ("fake_negative", False)):
        cfg = load_config(JOB, [f"job.run_dir={tmp_path}", f"feedback.strategy={strategy}"])
        assert (WorkerSupervisor(cfg).schema.names[-1] == "weight") == weighted, strategy
