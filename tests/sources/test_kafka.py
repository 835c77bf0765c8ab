"""The producer tool's encodings, the decoder a job gets, and the topic DDL (no Flink here)."""

from pathlib import Path

import pytest

from flinkdl.config.loader import load_config
from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.devtools.produce import encode, generator_batches
from flinkdl.sources.kafka import decoder, table_ddl

ROOT = Path(__file__).resolve().parents[2]


def kafka_job(fmt: str) -> JobConfig:
    return load_config(ROOT / "jobs" / "click_stream_kafka.yaml", [f"source.kafka.format={fmt}"])


def test_producer_encodings_are_one_event_per_row_message():
    raw = next(generator_batches(3, batch_size=3))
    csv = encode(raw, "csv")
    assert len(csv) == 3 and csv[1].startswith(b"1,")
    js = encode(raw, "json")
    assert len(js) == 3 and js[2].startswith(b'{"event_id":2,')
    cfg = kafka_job("json")
    batch, letters = decoder(cfg).rows(js, 0)
    assert letters == [] and batch.column("C1").to_pylist() == raw.column("C1").to_pylist()
    (msg,) = encode(raw, "arrow")  # the generator's columns are all known to the job: no schema drift
    batch, letters = decoder(kafka_job("arrow")).arrow(msg, 0)
    assert letters == [] and batch.num_rows == 3


def test_table_ddl_maps_offsets_and_escapes_quotes():
    k = KafkaSourceConfig(bootstrap_servers="h:9", topic="t", format="arrow", starting_offsets="earliest",
                          properties={"sasl.jaas.config": "x='y'"})
    ddl = table_ddl(k)
    assert "msg BYTES" in ddl and table_ddl(KafkaSourceConfig(bootstrap_servers="h:9", topic="t", columns=["a"])) \
        .count("msg BYTES") == 1 and "'scan.startup.mode' = 'earliest-offset'" in ddl
    assert "'properties.sasl.jaas.config' = 'x=''y'''" in ddl


def test_csv_source_needs_columns():
    with pytest.raises(ValueError, match="columns"):
        KafkaSourceConfig(bootstrap_servers="b:1", topic="t", format="csv")


def test_produce_cli_replays_a_tsv_file_with_a_limit(kafka_broker, tmp_path):
    from flinkdl.cli import main
    from flinkdl.devtools.produce import file_batches, read_topic

    path = tmp_path / "x.inter"
    path.write_text("event_id\tlabel\tc\n" + "".join(f"{i}\t{i % 2}\t{i * 7}\n" for i in range(50)))
    assert [b.num_rows for b in file_batches(path, batch_size=20, limit=45)] == [20, 20, 5]
    assert main(["produce", "--bootstrap", kafka_broker.bootstrap, "--topic", "from-file", "--file", str(path),
                 "--format", "csv", "--limit", "30", "--quiet"]) == 0
    msgs = read_topic(kafka_broker.bootstrap, "from-file", expect=30)
    assert [m.key() for m in msgs] == [str(i).encode() for i in range(30)]
    assert msgs[3].value() == b"3,1,21"


SASL_SSL = """
source:
  kind: kafka
  kafka:
    bootstrap_servers: 127.0.0.1:1        # nothing listens: the test only builds the clients
    topic: clicks
    format: json
    properties:
      security.protocol: SASL_SSL
      sasl.mechanism: SCRAM-SHA-512
      sasl.username: flinkdl
      sasl.password: ${DOCTEST_SASL_PASSWORD}
      sasl.jaas.config: ScramLoginModule required username="flinkdl" password="${DOCTEST_SASL_PASSWORD}";
      ssl.truststore.location: /etc/kafka.jks
sinks:
  kafka: {topic: predictions}
"""


def test_kafka_security_properties_reach_the_source_and_the_producer(tmp_path, monkeypatch):
    from flinkdl.config.loader import dump_config
    from flinkdl.sinks.kafka import KafkaPublisher

    monkeypatch.setenv("DOCTEST_SASL_PASSWORD", "pw-from-env")
    path = tmp_path / "job.yaml"
    path.write_text(SASL_SSL)
    cfg = load_config(path)
    k = cfg.source.kafka
    ddl = table_ddl(k)  # what Flink's Kafka source is given
    for key, value in [("security.protocol", "SASL_SSL"), ("sasl.mechanism", "SCRAM-SHA-512"),
                       ("sasl.username", "flinkdl"), ("sasl.password", "pw-from-env")]:
        assert f"'properties.{key}' = '{value}'" in ddl
    assert "'properties.ssl.truststore.location' = '/etc/kafka.jks'" in ddl and 'password=""pw-from-env""' not in ddl
    assert "password=\"pw-from-env\";'" in ddl
    # the predictions producer writes to the same cluster: it inherits them (librdkafka accepts them),
    # less the Java client's own keys, which librdkafka refuses
    pub = KafkaPublisher(cfg.sinks.kafka, k.bootstrap_servers, "lr", None, 0, k.properties)
    assert {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.password": "pw-from-env"}.items() <= pub.client_properties.items()
    assert not {"sasl.jaas.config", "ssl.truststore.location"} & set(pub.client_properties)
    # the run directory's config.yaml never holds the secret
    assert "pw-from-env" not in dump_config(cfg) and "sasl.password: '***'" in dump_config(cfg)
    with pytest.raises(ValueError, match="a secret on the command line"):
        load_config(path, ["source.kafka.properties.sasl.password=pw"])


def test_the_producer_takes_the_source_clusters_connection_properties_not_its_consumer_ones():
    from flinkdl.sinks.kafka import KafkaPublisher

    cfg = load_config(ROOT / "jobs/click_stream_kafka.yaml", [
        "source.kafka.properties.fetch.max.wait.ms=10", "source.kafka.properties.max.poll.records=50",
        "source.kafka.properties.security.protocol=PLAINTEXT"])
    k = cfg.source.kafka
    assert cfg.sinks.kafka is not None and k is not None
    assert k.properties["fetch.max.wait.ms"] == "10" and "'properties.fetch.max.wait.ms' = '10'" in table_ddl(k)
    pub = KafkaPublisher(cfg.sinks.kafka, k.bootstrap_servers, "lr", None, 0, k.properties)  # librdkafka accepts
    assert pub.client_properties["security.protocol"] == "PLAINTEXT"
    assert not {"fetch.max.wait.ms", "max.poll.records"} & set(pub.client_properties)
