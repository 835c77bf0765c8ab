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


def _envelopes(op: KafkaFeatures, element: list, schema) -> list[tuple[int, int, list, list]]:
    out = []
    for row in op.flat_map(element):
        e = Envelope.of(row)
        ids = unpack(e.payload, schema).column("event_id").to_pylist()
        out.append((e.seq, e.rows_in, ids, [d["position"] for d in decode_letters(e.dead_letters).dead]))
    return out


def test_a_chunk_is_learnt_in_steps_of_max_batch_rows(tmp_path) -> None:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "source.max_batch_rows=3"])
    op = KafkaFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    schema = FeatureLayout.from_config(cfg.features).schema()
    msgs = encode(next(generator_batches(10, 10)), "csv")
    msgs[4] = b"not,a,row"  # a dead letter (field_count) among the rows
    envs = _envelopes(op, [msgs, len(msgs)], schema) + _envelopes(op, [msgs[:2], 2], schema)
    first, second = envs[:3], envs[3:]
    assert [e[2] for e in first] == [[0, 1, 2], [3, 5, 6], [7, 8, 9]]  # 9 good rows: 3 steps of 3
    assert [e[3] for e in first] == [[], [4], []] and [e[1] for e in first] == [3, 4, 3]
    assert [e[0] for e in envs] == list(range(4))  # one seq per envelope; the next chunk continues
    assert second[0][1] == 2
    # an Arrow message (one batch of many events) is split the same way
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "source.max_batch_rows=4", "source.kafka.format=arrow"])
    op = KafkaFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    (msg,) = encode(next(generator_batches(10, 10)), "arrow")
    envs = _envelopes(op, [msg], schema)
    assert [len(e[2]) for e in envs] == [4, 4, 2] and [i for e in envs for i in e[2]] == list(range(10))


def test_the_old_directory_key_is_read_as_source_max_batch_rows(tmp_path) -> None:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}"])
    assert cfg.source.max_batch_rows == 512
    d = {"kind": "directory", "directory": {"path": "in", "columns": ["a"], "max_batch_rows": 4}}
    from flinkdl.config.sources import SourceConfig
    assert SourceConfig.model_validate(d).max_batch_rows == 4
