"""Kafka message decoding, the producer tool's encodings, and the topic DDL (no Flink here)."""

import base64

import pytest

from flinkdl.config.schema import FeatureConfig, JobConfig, KafkaSourceConfig
from flinkdl.features.transform import Featurizer
from flinkdl.produce import encode, generator_batches
from flinkdl.sources.kafka import needed_columns, parse_arrow, parse_csv, parse_json, table_ddl

FEATS = FeatureConfig(event_id="event_id", categorical=[{"name": "c", "type": "int"}], numeric=["n"])
COLS = needed_columns(FEATS)


def test_json_fast_path_keeps_types_and_positions():
    batch, dead = parse_json('{"event_id": 7, "label": 1, "c": 3, "n": 2.5, "extra": "x"}\n'
                             '{"event_id": 8, "label": 0, "c": 4}', COLS, 100)
    assert dead == []
    assert batch.to_pydict() == {"event_id": [7, 8], "label": [1, 0], "c": [3, 4], "n": [2.5, None],
                                 "__position__": [100, 101]}


def test_json_bad_lines_become_dead_letters_and_the_rest_goes_on():
    text = '{"event_id": 1, "label": 1, "c": 1, "n": 1}\n[1, 2]\n\n{"event_id": 2, "label": "0", "c": "x", "n": 3}'
    batch, dead = parse_json(text, COLS, 0)
    assert [(d.reason, d.position) for d in dead] == [("malformed", 1), ("malformed", 2)]
    assert batch.column("__position__").to_pylist() == [0, 3]
    assert batch.column("label").to_pylist() == ["1", "0"]  # types differ between rows: strings
    feats, more = Featurizer(FEATS).transform(batch)
    assert feats.column("event_id").to_pylist() == [1]
    assert [(d.reason, d.field, d.value) for d in more] == [("bad_id", "c", "x")]


def test_csv_messages_parse_like_file_lines():
    k = KafkaSourceConfig(bootstrap_servers="b:1", topic="t", columns=["event_id", "label", "c", "n"])
    batch, dead = parse_csv("1,1,5,2\n2,0,6\n3,1,7,1", k, FEATS, 10)
    assert batch.column("event_id").to_pylist() == ["1", "3"]
    assert [(d.reason, d.position) for d in dead] == [("field_count", 11)]


def test_arrow_message_round_trip_and_corrupt_or_incomplete_messages():
    raw = next(generator_batches(50, batch_size=50))
    (msg,) = encode(raw, "arrow")
    cfg = JobConfig()
    batch, dead = parse_arrow(msg, needed_columns(cfg.features), 1000)
    assert dead == [] and batch.num_rows == 50
    assert batch.column("__position__").to_pylist() == list(range(1000, 1050))
    feats, more = Featurizer(cfg.features).transform(batch)
    assert feats.num_rows == 50 and more == []

    empty, dead = parse_arrow(msg[: len(msg) // 2], needed_columns(cfg.features), 7)
    assert empty.num_rows == 0 and dead[0].reason == "corrupt_arrow" and dead[0].position == 7
    assert base64.b64decode(dead[0].raw) == msg[: len(msg) // 2]
    (partial,) = encode(raw.select(["event_id", "label"]), "arrow")
    _, dead = parse_arrow(partial, needed_columns(cfg.features), 0)
    assert dead[0].reason == "malformed" and "C1" in dead[0].value


def test_producer_encodings_are_one_event_per_row_message():
    raw = next(generator_batches(3, batch_size=3))
    csv = encode(raw, "csv")
    assert len(csv) == 3 and csv[1].startswith(b"1,")
    js = encode(raw, "json")
    assert len(js) == 3 and js[2].startswith(b'{"event_id":2,')
    batch, dead = parse_json(b"\n".join(js).decode(), needed_columns(JobConfig().features), 0)
    assert dead == [] and batch.column("C1").to_pylist() == raw.column("C1").to_pylist()


def test_table_ddl_maps_offsets_and_escapes_quotes():
    k = KafkaSourceConfig(bootstrap_servers="h:9", topic="t", format="arrow", starting_offsets="earliest",
                          properties={"sasl.jaas.config": "x='y'"})
    ddl = table_ddl(k)
    assert "msg BYTES" in ddl and "'scan.startup.mode' = 'earliest-offset'" in ddl
    assert "'properties.sasl.jaas.config' = 'x=''y'''" in ddl


def test_csv_source_needs_columns():
    with pytest.raises(ValueError, match="columns"):
        KafkaSourceConfig(bootstrap_servers="b:1", topic="t", format="csv")


def test_produce_cli_replays_a_tsv_file_with_a_limit(kafka_broker, tmp_path):
    from flinkdl.cli import main
    from flinkdl.produce import file_batches, read_topic

    path = tmp_path / "x.inter"
    path.write_text("event_id\tlabel\tc\n" + "".join(f"{i}\t{i % 2}\t{i * 7}\n" for i in range(50)))
    assert [b.num_rows for b in file_batches(path, batch_size=20, limit=45)] == [20, 20, 5]
    assert main(["produce", "--bootstrap", kafka_broker.bootstrap, "--topic", "from-file", "--file", str(path),
                 "--format", "csv", "--limit", "30", "--quiet"]) == 0
    msgs = read_topic(kafka_broker.bootstrap, "from-file", expect=30)
    assert [m.key() for m in msgs] == [str(i).encode() for i in range(30)]
    assert msgs[3].value() == b"3,1,21"
