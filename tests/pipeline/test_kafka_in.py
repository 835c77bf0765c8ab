"""KafkaFeatures without Flink: a chunk that raises in decoding costs only the message that raises."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from flinkdl.config.loader import load_config
from flinkdl.devtools.produce import encode, generator_batches
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.letters import decode_letters
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.pipeline.kafka_in import KafkaFeatures

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
    envs = [Envelope.of(row) for row in op.flat_map([msgs, len(msgs)])]
    schema = FeatureLayout.from_config(cfg.features).schema()
    ids = [i for e in envs for i in unpack(e.payload, schema).column("event_id").to_pylist()]
    dead = [d for e in envs for d in decode_letters(e.dead_letters).dead]
    assert ids == [0, 1, 2, 3, 4, 6, 7] and sum(e.rows_in for e in envs) == 8
    assert [(d["reason"], d["position"]) for d in dead] == [("malformed", 5)]
    assert "RuntimeError: boom" in dead[0]["value"] and len({e.seq for e in envs}) == len(envs)
