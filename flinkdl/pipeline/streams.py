"""The job's sources as Flink streams: batch indexes (generator), feature envelopes (Kafka, directory)."""

from __future__ import annotations

from pyflink.common import WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource

from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.exchange.envelope import ENVELOPE_TYPE
from flinkdl.pipeline.featurize import ParseFeatures
from flinkdl.pipeline.latency import budget
from flinkdl.pipeline.operator import section

UNBOUNDED_BATCHES = 1 << 50


def batch_indexes(flink: StreamExecutionEnvironment, cfg: JobConfig) -> DataStream:
    """The generator source: one sequence of batch indexes, in event-time order; the trainers fan
    out from it. (A parallel NumberSequenceSource would give each subtask a contiguous half of the
    stream: worker 1 would train on the drifted half while worker 0 is still before it.)"""
    gen = cfg.source.generator
    n_batches = -(-gen.events // gen.batch_size) if gen.events else UNBOUNDED_BATCHES
    if cfg.parallel.sync_steps and cfg.job.parallelism > 1 and gen.events:  # a share per rank: parallel/deal.py
        n_batches *= cfg.job.parallelism
    if cfg.source.kind == "kafka":  # takes of the topic by offset (sync steps: flinkdl/parallel/kafka_plan.py)
        n_batches = UNBOUNDED_BATCHES
    return flink.from_source(NumberSequenceSource(0, n_batches - 1), WatermarkStrategy.no_watermarks(),
                             "click-generator").set_parallelism(1)


def feature_stream(flink: StreamExecutionEnvironment, cfg: JobConfig) -> DataStream:
    """Source → parse + hash: a stream of feature envelopes (Kafka, watched directory)."""
    cfg_json = cfg.model_dump_json()
    if cfg.source.kind == "kafka":
        from flinkdl.pipeline.kafka_in import KafkaFeatures
        from flinkdl.sources.kafka import kafka_stream

        k = kafka_section(cfg)
        if k.reader == "python":
            from flinkdl.pipeline.kafka_pull import pull_stream

            return pull_stream(flink, cfg, k)
        return kafka_stream(flink, k).flat_map(
            KafkaFeatures(cfg_json), output_type=ENVELOPE_TYPE).name("kafka+featurize")
    return _directory_chunks(flink, cfg).flat_map(ParseFeatures(cfg_json), output_type=ENVELOPE_TYPE).name(
        "parse+featurize")


def kafka_section(cfg: JobConfig) -> KafkaSourceConfig:
    """``source.kafka``, its ``batch_ms`` set by ``job.max_latency_ms`` if that is given."""
    k = section(cfg.source.kafka, "source.kafka")
    if cfg.job.max_latency_ms is not None:  # the JVM window is the first timer on the path
        k = k.model_copy(update={"batch_ms": budget(cfg.job.max_latency_ms).window_ms})
    return k


def _directory_chunks(flink: StreamExecutionEnvironment, cfg: JobConfig) -> DataStream:
    from pyflink.table import StreamTableEnvironment

    d = section(cfg.source.directory, "source.directory")
    tenv = StreamTableEnvironment.create(flink)
    uri = d.path.resolve().as_uri()
    tenv.execute_sql(f"""
        CREATE TEMPORARY TABLE raw_lines (line STRING, pt AS PROCTIME()) WITH (
          'connector' = 'filesystem', 'path' = '{uri}', 'format' = 'raw',
          'source.monitor-interval' = '{int(d.monitor_interval_s * 1000)}ms')""")
    chunks = tenv.sql_query(f"""
        SELECT LISTAGG(line, '\n') AS chunk, COUNT(*) AS n FROM raw_lines
        GROUP BY TUMBLE(pt, INTERVAL '{d.batch_ms / 1000:.3f}' SECOND)""")
    return tenv.to_data_stream(chunks)
