"""A published version scores raw events (SavedModel) and featurized ones (ONNX) like the worker's model."""

from __future__ import annotations

import mmh3
import numpy as np
import onnxruntime as ort
import tensorflow as tf

from flinkdl.publish.graph import murmur3_strings
from flinkdl.publish.publisher import ONNX_FILE, Publisher, snapshot
from tests.publish.helpers import featurized, model_of, raw_batches, raw_inputs, small_config


def test_string_murmur3_matches_mmh3():
    vals = ["", "a", "ab", "abc", "abcd", "abcde", "héllo wörld", "x" * 37, "日本語", "0123456789abcdef"]
    for seed in (0, 7, 0xDEADBEEF):
        got = murmur3_strings(tf.constant(vals), seed).numpy().tolist()
        assert got == [mmh3.hash(v, seed, signed=False) for v in vals]
    assert murmur3_strings(tf.constant([], tf.string), 3).numpy().size == 0


def test_both_formats_score_like_the_worker(tmp_path):
    cfg = small_config(dir=str(tmp_path / "pub"), formats=["saved_model", "onnx"])
    model = model_of(cfg)
    raws = raw_batches(4)
    for raw in raws[:3]:
        b = featurized(cfg, raw)
        model.predict_then_train(b.ids, b.dense, b.label)
    path = Publisher(cfg.publish, cfg.features, cfg.model).write(snapshot(model, 7, {"metrics": {"auc": None}}))
    assert path == tmp_path / "pub" / "7" and (path / "saved_model.pb").is_file() and (path / ONNX_FILE).is_file()

    held_out = raws[3]
    b = featurized(cfg, held_out)
    worker = model.predict(b.ids, b.dense).numpy()
    loaded = tf.saved_model.load(str(path))
    raw = raw_inputs(cfg, held_out)
    tf_raw = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["score"].numpy()
    tf_feat = loaded.signatures["score_features"](ids=b.ids, dense=b.dense)["score"].numpy()
    sess = ort.InferenceSession(str(path / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx = sess.run(["score"], {"ids": b.ids.numpy(), "dense": b.dense.numpy()})[0]
    assert worker.std() > 1e-3  # a trained model, not a constant
    for got in (tf_raw, tf_feat, onnx):
        assert np.abs(got - worker).max() <= 1e-5
