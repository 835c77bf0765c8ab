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


def test_a_long_chunk_is_decoded_in_pieces_of_whole_steps(tmp_path, monkeypatch) -> None:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "source.max_batch_rows=2"])
    op = KafkaFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    monkeypatch.setattr("flinkdl.pipeline.kafka_in.DECODE_MESSAGES", 6)  # → pieces of 3 steps: 6 messages
    calls: list[int] = []
    real = op.decoder.rows
    monkeypatch.setattr(op.decoder, "rows", lambda chunk, pos: (calls.append(pos), real(chunk, pos))[1])
    schema = FeatureLayout.from_config(cfg.features).schema()
    msgs = encode(next(generator_batches(10, 10)), "csv")
    msgs[7] = b""  # a dead letter in the second piece keeps its position in the chunk
    envs = _envelopes(op, [msgs, len(msgs)], schema)
    assert op.piece() == 6 and calls == [0, 6]
    assert [e[2] for e in envs] == [[0, 1], [2, 3], [4, 5], [6, 8], [9]]
    assert [e[3] for e in envs] == [[], [], [], [7], []]
    assert op.position == 10


def test_the_old_directory_key_is_read_as_source_max_batch_rows(tmp_path) -> None:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}"])
    assert cfg.source.max_batch_rows == 512
    d = {"kind": "directory", "directory": {"path": "in", "columns": ["a"], "max_batch_rows": 4}}
    from flinkdl.config.sources import SourceConfig
    assert SourceConfig.model_validate(d).max_batch_rows == 4


def test_movielens_events_are_joined_with_side_tables(tmp_path) -> None:
    """jobs/movielens_kafka.yaml's side tables (here small copies): profile columns and a genre bag per event."""
    from flinkdl.config.schema import SideTable

    (tmp_path / "u.tsv").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                    "1\t24\tM\ttechnician\t85711\n")
    (tmp_path / "i.tsv").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                    "5\tToy Story\t1995\tAnimation Children's Comedy\n")
    cfg = load_config(JOB.with_name("movielens_kafka.yaml"), [f"job.run_dir={tmp_path}"])
    tables = [t.model_copy(update={"path": tmp_path / name}) for t, name in zip(cfg.enrich, ["u.tsv", "i.tsv"],
                                                                                 strict=True)]
    assert all(isinstance(t, SideTable) for t in tables)
    cfg = cfg.model_copy(update={"enrich": tables})
    op = KafkaFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    msgs = [b"1,5,4,881250949", b"2,5,3,881250950", b"1,6,x,881250951"]  # user 2 and item 6: not in the tables
    (env,) = [Envelope.of(row) for row in op.flat_map([msgs, len(msgs)])]
    layout = FeatureLayout.from_config(cfg.features)
    batch = unpack(env.payload, layout.schema())
    assert layout.n_fields == 7 and layout.n_ids == 6 + 6 and batch.num_rows == 2  # the third: label_invalid
    genres = [batch.column(f"id_{6 + k}").to_pylist() for k in range(6)]
    assert [sum(v >= 0 for v in row) for row in zip(*genres, strict=True)] == [3, 3]  # both rated item 5
    gender = batch.column("id_3").to_pylist()
    assert gender[0] != gender[1]  # M vs the default "unknown"
    assert [d["reason"] for d in decode_letters(env.dead_letters).dead] == ["label_invalid"]
