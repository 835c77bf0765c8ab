"""KafkaFeatures without Flink: a chunk that raises in decoding costs only the message that raises."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from flinkdl.config.loader import load_config
from flinkdl.devtools.produce import encode, generator_batches
from flinkdl.exchange.channel import unpack
from flinkdl.features.layout import FeatureLayout
from flinkdl.pipeline.kafka_ops import KafkaFeatures

JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_stream_kafka.yaml"


def test_a_message_that_raises_is_dead_lettered_alone(tmp_path, monkeypatch) -> None:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}"])
    op = KafkaFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    msgs = encode(next(generator_batches(8, 8)), "csv")
    real = op.decoder.rows

    def flaky(chunk, pos):  # a decoder bug triggered by one message
        if msgs[5] in chunk:
            raise RuntimeError("boom")
        return real(chunk, pos)

    monkeypatch.setattr(op.decoder, "rows", flaky)
    envs = list(op.flat_map([msgs, len(msgs)]))
    schema = FeatureLayout.from_config(cfg.features).schema()
    ids = [i for e in envs for i in unpack(e[2], schema).column("event_id").to_pylist()]
    dead = [json.loads(x) for e in envs for x in bytes(e[3]).decode().splitlines()]
    assert ids == [0, 1, 2, 3, 4, 6, 7] and sum(e[1] for e in envs) == 8
    assert [(d["reason"], d["position"]) for d in dead] == [("malformed", 5)]
    assert "RuntimeError: boom" in dead[0]["value"] and len({e[0] for e in envs}) == len(envs)
