"""Build the Flink topology of the online-learning job from a :class:`JobConfig`.

::

    FileSource (SQL, raw lines, LISTAGG) ─► ParseFeatures ──┐
    KafkaSource ─► KafkaFeatures ────────────────────────────┴─keyBy─► Train (TF worker) ─┐
    NumberSequenceSource ─keyBy─► GenerateAndTrain (generate + featurize + TF worker) ─────┴─keyBy─► EvaluateAndSink (p=1)

The watched directory is read by Flink's filesystem connector with continuous monitoring;
its lines are grouped into chunks by a processing-time tumbling window in Flink SQL
(``LISTAGG``), so batching happens in the JVM and one Python crossing carries a whole chunk.
The generator's batches are made inside the trainer's operator: only their indexes cross the JVM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource

from flinkdl.config.schema import JobConfig
from flinkdl.pipeline.operators import (
    ENVELOPE,
    INDEX,
    EvaluateAndSink,
    GenerateAndTrain,
    ParseFeatures,
    Train,
    with_ballast,
)
from flinkdl.pipeline.routing import subtask_keys

UNBOUNDED_BATCHES = 1 << 50


def make_env(cfg: JobConfig, conf: Configuration | None = None) -> StreamExecutionEnvironment:
    """A stream environment configured for the job (mini-cluster when run locally)."""
    if cfg.metrics.enabled and cfg.metrics.flink_port:
        import pyflink  # the local gateway JVM finds the reporter plugin here; read when it starts (first env)

        os.environ.setdefault("FLINK_PLUGINS_DIR", str(Path(pyflink.__file__).parent / "plugins"))
    # PyFlink reads this when the job starts. Its default on a mini-cluster, loopback, runs every
    # Python operator as a thread of this client process; "process" gives each task a harness. (A
    # cluster always uses harnesses and refuses an explicit loopback.)
    if cfg.job.python_harness == "process":
        os.environ["_python_worker_execution_mode"] = "process"
    else:
        os.environ.pop("_python_worker_execution_mode", None)
    conf = conf or Configuration()
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.execution-mode", cfg.job.python_execution_mode)
    # Each element is a whole batch: a bundle of many amortises Beam's per-bundle round trip (bundle
    # size 1 halved throughput) and 100 ms bound its intake. The generator's trainer reads batch
    # indexes, which the source makes all at once: a bundle of 1000 would hold a whole stream's
    # predictions back; 32 (0.5-2 s of training) ran fastest (docs/BENCHMARKS.md).
    bundle = cfg.job.bundle_size or (32 if cfg.source.kind == "generator" else 1000)
    conf.set_string("python.fn-execution.bundle.size", str(bundle))
    conf.set_string("python.fn-execution.bundle.time", str(cfg.job.bundle_time_ms))
    if cfg.metrics.enabled and cfg.metrics.flink_port:  # Flink's own metrics (bundled reporter plugin)
        conf.set_string("metrics.reporter.prom.factory.class",
                        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
        conf.set_string("metrics.reporter.prom.port", cfg.metrics.flink_port)
    if cfg.job.checkpoint_dir is not None:  # kept after cancel/failure: a restart point
        conf.set_string("execution.checkpointing.dir", Path(cfg.job.checkpoint_dir).resolve().as_uri())
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    elif cfg.job.checkpoint_interval_s:  # files, not the JobManager heap (5 MB per state: the tail is bigger)
        conf.set_string("execution.checkpointing.dir", (Path(cfg.job.run_dir) / "checkpoints").resolve().as_uri())
    if cfg.job.restore_from is not None:
        conf.set_string("execution.savepoint.path", Path(cfg.job.restore_from).resolve().as_uri())
    if cfg.job.checkpoint_interval_s:  # without a checkpoint a restart would replay from the start
        conf.set_string("restart-strategy.type", "fixed-delay")
        conf.set_string("restart-strategy.fixed-delay.attempts", str(cfg.job.restart_attempts))
        conf.set_string("restart-strategy.fixed-delay.delay", f"{int(cfg.job.restart_delay_s * 1000)}ms")
    else:
        conf.set_string("restart-strategy.type", "none")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.job.parallelism)
    if cfg.job.checkpoint_interval_s:
        env.enable_checkpointing(int(cfg.job.checkpoint_interval_s * 1000))
    if cfg.source.kind == "kafka" or cfg.sinks.kafka is not None:
        from flinkdl.devtools.connectors import kafka_jars

        env.add_jars(*(p.resolve().as_uri() for p in kafka_jars()))
    return env


def batch_indexes(env: StreamExecutionEnvironment, cfg: JobConfig) -> DataStream:
    """The generator source: one sequence of batch indexes, in event-time order; the trainers fan
    out from it. (A parallel NumberSequenceSource would give each subtask a contiguous half of the
    stream: worker 1 would train on the drifted half while worker 0 is still before it.)"""
    gen = cfg.source.generator
    n_batches = -(-gen.events // gen.batch_size) if gen.events else UNBOUNDED_BATCHES
    return env.from_source(NumberSequenceSource(0, n_batches - 1), WatermarkStrategy.no_watermarks(),
                           "click-generator").set_parallelism(1)


def feature_stream(env: StreamExecutionEnvironment, cfg: JobConfig) -> DataStream:
    """Source → parse + hash: a stream of feature :data:`ENVELOPE` s (Kafka, watched directory)."""
    cfg_json = cfg.model_dump_json()
    if cfg.source.kind == "kafka":
        from flinkdl.pipeline.kafka_ops import KafkaFeatures
        from flinkdl.sources.kafka import kafka_stream

        return kafka_stream(env, cfg.source.kafka).flat_map(KafkaFeatures(cfg_json), output_type=ENVELOPE).name(
            "kafka+featurize")
    return _directory_chunks(env, cfg).flat_map(ParseFeatures(cfg_json), output_type=ENVELOPE).name(
        "parse+featurize")


def _directory_chunks(env: StreamExecutionEnvironment, cfg: JobConfig) -> DataStream:
    from pyflink.table import StreamTableEnvironment

    d = cfg.source.directory
    tenv = StreamTableEnvironment.create(env)
    uri = d.path.resolve().as_uri()
    tenv.execute_sql(f"""
        CREATE TEMPORARY TABLE raw_lines (line STRING, pt AS PROCTIME()) WITH (
          'connector' = 'filesystem', 'path' = '{uri}', 'format' = 'raw',
          'source.monitor-interval' = '{int(d.monitor_interval_s * 1000)}ms')""")
    chunks = tenv.sql_query(f"""
        SELECT LISTAGG(line, '\n') AS chunk, COUNT(*) AS n FROM raw_lines
        GROUP BY TUMBLE(pt, INTERVAL '{d.batch_ms / 1000:.3f}' SECOND)""")
    return tenv.to_data_stream(chunks)


def build(env: StreamExecutionEnvironment, cfg: JobConfig, max_events: int | None = None) -> None:
    """Add the whole job to ``env``; run it with ``env.execute``."""
    cfg_json = cfg.model_dump_json()
    # Keyed by the subtask each batch is meant for: the trainer and the sink keep their
    # exactly-once anchor + tail in keyed state (flinkdl/pipeline/recovery.py).
    keys = subtask_keys(cfg.job.parallelism)
    if cfg.source.kind == "generator":  # batch i goes to subtask i % p (GenerateAndTrain relies on it)
        indexes = batch_indexes(env, cfg).map(with_ballast, output_type=INDEX).name("ballast")
        preds = (indexes.key_by(lambda r: keys[r[0] % len(keys)], key_type=Types.INT())
                 .process(GenerateAndTrain(cfg_json), output_type=ENVELOPE).name("generate+featurize+train"))
    else:  # the trainer gets its own chain, so parsing the next batch overlaps training on this one
        preds = (feature_stream(env, cfg).key_by(lambda env: keys[env[0] % len(keys)], key_type=Types.INT())
                 .process(Train(cfg_json), output_type=ENVELOPE).name("train"))
    if cfg.sinks.kafka is not None:  # acknowledged on the topic before it is evaluated
        from flinkdl.pipeline.kafka_ops import PublishKafka

        if cfg.sinks.kafka.bootstrap_servers is None and cfg.source.kafka is None:
            raise ValueError("sinks.kafka.bootstrap_servers is needed when the source is not Kafka")
        preds = preds.map(PublishKafka(cfg_json), output_type=ENVELOPE).name("publish-kafka").start_new_chain()
    (preds.key_by(lambda env: 0, key_type=Types.INT())
     .process(EvaluateAndSink(cfg_json, max_events), output_type=Types.STRING())
     .name("evaluate+sink").set_parallelism(1)
     .print().name("progress").set_parallelism(1))
