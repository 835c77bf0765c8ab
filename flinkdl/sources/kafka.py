"""Kafka input: Flink's Kafka table source (offsets in Flink checkpoints); decoding is :mod:`.messages`.

The topic is read with the ``raw`` format as ``BYTES`` (so a non-UTF-8 message keeps its bytes for
the dead letter). Row messages (``csv``/``json``, one event per message) are grouped in the JVM:
a processing-time ``TUMBLE`` window collects the messages of each ``batch_ms`` (``ARRAY_AGG``)
into one element, so one Python crossing carries thousands of events; a null value (tombstone)
becomes ``b""`` and so an ``empty`` dead letter. ``arrow`` messages (one Arrow IPC stream with one
RecordBatch of many events) cross one per element. Message keys are not read: the event id is a
column of the value (``features.event_id``), so a message without a key is an ordinary event.
"""

from __future__ import annotations

from flinkdl.config.base import section
from flinkdl.config.enrich import source_features
from flinkdl.config.schema import FeatureConfig, JobConfig, KafkaSourceConfig
from flinkdl.sources.messages import MessageDecoder

_STARTUP = {"committed": "group-offsets", "earliest": "earliest-offset", "latest": "latest-offset"}


def needed_columns(features: FeatureConfig) -> list[str]:
    """The raw columns the featurizer reads."""
    cols = [features.label.column, *(c.name for c in features.categorical), *(n.name for n in features.numeric)]
    if features.event_id is not None:
        cols.insert(0, features.event_id)
    return list(dict.fromkeys(cols))


def decoder(cfg: JobConfig) -> MessageDecoder:
    """The message decoder of a Kafka job: known columns = the featurizer's (less what side tables add, plus
    their keys), the timestamp, the slice field."""
    k, f = section(cfg.source.kafka, "source.kafka"), source_features(cfg.features, cfg.enrich)
    columns = list(dict.fromkeys([*needed_columns(f), *(t.event_column for t in cfg.enrich)]))  # + side-table keys
    known = {*columns, *(c for c in (f.timestamp, cfg.evaluation.slice_field) if c)}
    return MessageDecoder(k.format, columns, known, f, k.columns)


def table_ddl(k: KafkaSourceConfig, table: str = "kafka_in") -> str:
    """``CREATE TEMPORARY TABLE`` for the topic: one column ``msg`` (``BYTES``)."""
    opts = {
        "connector": "kafka", "topic": k.topic, "properties.bootstrap.servers": k.bootstrap_servers,
        "properties.group.id": k.group_id, "scan.startup.mode": _STARTUP[k.starting_offsets],
        "properties.auto.offset.reset": "earliest", "format": "raw",
        **{f"properties.{key}": v for key, v in k.properties.items()},
    }
    with_ = ",\n  ".join(f"'{key}' = '{str(v).replace(chr(39), chr(39) * 2)}'" for key, v in opts.items())
    return f"CREATE TEMPORARY TABLE {table} (msg BYTES, pt AS PROCTIME()) WITH (\n  {with_})"


def kafka_stream(env, k: KafkaSourceConfig):
    """A DataStream of ``Row(messages, n)`` (csv/json: a list of ``bytes``) or ``Row(message)`` (arrow)."""
    from pyflink.table import StreamTableEnvironment

    tenv = StreamTableEnvironment.create(env)
    tenv.execute_sql(table_ddl(k))
    if k.format == "arrow":
        return tenv.to_data_stream(tenv.sql_query("SELECT COALESCE(msg, X'') AS msg FROM kafka_in"))
    # ARRAY_AGG, not LISTAGG: LISTAGG re-copies the whole string on every row (quadratic), which
    # capped a window at ~500 CSV messages (2.7k ev/s); ARRAY_AGG appends.
    chunks = tenv.sql_query(f"""
        SELECT ARRAY_AGG(COALESCE(msg, X'')) AS msgs, COUNT(*) AS n FROM kafka_in
        GROUP BY TUMBLE(pt, INTERVAL '{k.batch_ms / 1000:.3f}' SECOND)""")
    return tenv.to_data_stream(chunks)
