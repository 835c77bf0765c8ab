"""Build the Flink topology of the online-learning job from a :class:`JobConfig`.

::

    FileSource (SQL, raw lines, LISTAGG) ─► ParseFeatures ─┐
    KafkaSource ─► KafkaFeatures ──────────────────────────┴─keyBy─► Train (TF worker) ─keyBy─► EvaluateAndSink (p=1)
    Kafka ticks ─keyBy─► ReadTrainAndSink (Python consumer + featurize + TF worker + sink; p=1)
    NumberSequenceSource ─keyBy─► GenerateTrainAndSink (generate + featurize + TF worker + sink; p=1)

At parallelism 1 the generator's and the Python Kafka reader's trainers publish and evaluate their
predictions in their own operator (:mod:`flinkdl.pipeline.train_sink`); at p > 1 the generator's
trainer is :class:`~flinkdl.pipeline.train.GenerateAndTrain`, which emits its prediction envelopes.

At ``job.parallelism > 1`` the end of every path is :mod:`flinkdl.pipeline.partial_eval` instead: an evaluator
per subtask and one aggregator of their counts.
With ``job.exactly_once`` at parallelism > 1 the trainers' anchors (a side output) also go ─keyBy─►
PsCut (p=1, :mod:`flinkdl.pipeline.ps_cut`), which records each cut of writer lanes on the PS.

The sources are in :mod:`flinkdl.pipeline.streams`; every arrow after them carries
:class:`~flinkdl.exchange.envelope.Envelope` rows, except the generator's batch indexes
(:data:`~flinkdl.pipeline.flow.INDEX_TYPE`): its batches are made inside the trainer's operator.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from flinkdl.config.flink import merged
from flinkdl.config.schema import JobConfig
from flinkdl.exchange.envelope import ENVELOPE_TYPE, Envelope
from flinkdl.pipeline.flow import INDEX_TYPE, index_of, with_ballast
from flinkdl.pipeline.kafka_train import read_and_train, sync_kafka, trains_in_reader
from flinkdl.pipeline.latency import budget
from flinkdl.pipeline.routing import subtask_keys
from flinkdl.pipeline.sink import EvaluateAndSink
from flinkdl.pipeline.streams import batch_indexes, feature_stream, kafka_section
from flinkdl.pipeline.train import GenerateAndTrain, Train

#: The environment variable PyFlink reads for the mini-cluster's Python harness mode (its exact, lowercase name).
WORKER_MODE_ENV = "_python_worker_execution_mode"
#: The options PyFlink's local gateway JVM (the mini-cluster) starts with, from this variable.
JVM_ARGS_ENV = "JVM_ARGS"
#: The mini-cluster JVM's options when no event crosses it (:func:`light_jvm`): the client compiler only
#: (C2's compile threads were most of its CPU over a 1M-event run) and the serial collector (no
#: concurrent G1 threads for a heap that holds a few batch indexes). docs/BENCHMARKS.md, issue 19.
LIGHT_JVM_ARGS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def light_jvm(cfg: JobConfig) -> bool:
    """Whether the job's events stay in Python: the generator's batch indexes, or the Python Kafka reader
    training in its own operator, are all the JVM carries (at parallelism 1 not even the predictions)."""
    return cfg.job.parallelism == 1 and (cfg.source.kind == "generator" or trains_in_reader(cfg))


def make_env(cfg: JobConfig, conf: Configuration | None = None, training: bool = True) -> StreamExecutionEnvironment:
    """A stream environment configured for the job (mini-cluster when run locally); ``training``: the
    training job of ``cfg`` (the serving job passes False: its feature envelopes cross the JVM)."""
    if cfg.metrics.enabled and cfg.metrics.flink_port:
        import pyflink  # the local gateway JVM finds the reporter plugin here; read when it starts (first env)

        os.environ.setdefault("FLINK_PLUGINS_DIR", str(Path(pyflink.__file__).parent / "plugins"))
    # PyFlink reads this when the job starts. Its default on a mini-cluster, loopback, runs every
    # Python operator as a thread of this client process; "process" gives each task a harness. (A
    # cluster always uses harnesses and refuses an explicit loopback.)
    if cfg.job.python_harness == "process":
        os.environ[WORKER_MODE_ENV] = "process"
    else:
        os.environ.pop(WORKER_MODE_ENV, None)
    conf = conf or _first_configuration(LIGHT_JVM_ARGS if training and light_jvm(cfg) else None)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.execution-mode", cfg.job.python_execution_mode)
    # Each element is a whole batch: a bundle of many amortises Beam's per-bundle round trip, and
    # the bundle time bounds its intake. The generator's trainer reads batch indexes, which the
    # source makes all at once: a big bundle would hold a whole stream's predictions back, so it
    # gets a small one (the sizes were measured: docs/BENCHMARKS.md).
    bundle = cfg.job.bundle_size or (32 if cfg.source.kind == "generator" else 1000)
    conf.set_string("python.fn-execution.bundle.size", str(bundle))
    conf.set_string("python.fn-execution.bundle.time", str(cfg.job.bundle_time_ms))
    if cfg.job.max_latency_ms is not None:  # one latency target sizes every timer on the path
        for key, value in budget(cfg.job.max_latency_ms).flink_options().items():
            conf.set_string(key, value)
    if cfg.metrics.enabled and cfg.metrics.flink_port:  # Flink's own metrics (bundled reporter plugin)
        conf.set_string("metrics.reporter.prom.factory.class",
                        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
        conf.set_string("metrics.reporter.prom.port", cfg.metrics.flink_port)
    if cfg.job.checkpoint_dir is not None:  # kept after cancel/failure: a restart point
        conf.set_string("execution.checkpointing.dir", Path(cfg.job.checkpoint_dir).resolve().as_uri())
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    elif cfg.job.checkpoint_interval_s:  # files, not the JobManager heap (its state size limit is below the tail's)
        conf.set_string("execution.checkpointing.dir", (Path(cfg.job.run_dir) / "checkpoints").resolve().as_uri())
    if cfg.job.restore_from is not None:
        conf.set_string("execution.savepoint.path", Path(cfg.job.restore_from).resolve().as_uri())
    if cfg.job.exactly_once and cfg.job.parallelism > 1:  # else a barrier waits behind every batch the
        # sources made while the workers started (all-to-all channels buffer more of them than at p=1)
        conf.set_string("execution.checkpointing.unaligned.enabled", "true")
    if cfg.job.checkpoint_interval_s:  # without a checkpoint a restart would replay from the start
        conf.set_string("restart-strategy.type", "fixed-delay")
        conf.set_string("restart-strategy.fixed-delay.attempts", str(cfg.job.restart_attempts))
        conf.set_string("restart-strategy.fixed-delay.delay", f"{int(cfg.job.restart_delay_s * 1000)}ms")
    else:
        conf.set_string("restart-strategy.type", "none")
    for key, value in merged(cfg.flink).items():  # pass-through (flink: and -D), over the settings above
        conf.set_string(key, value)
    flink = StreamExecutionEnvironment.get_execution_environment(conf)
    flink.set_parallelism(cfg.job.parallelism)
    if cfg.job.checkpoint_interval_s:
        flink.enable_checkpointing(int(cfg.job.checkpoint_interval_s * 1000))
    if cfg.source.kind == "kafka" or cfg.sinks.kafka is not None:
        from flinkdl.devtools.connectors import kafka_jars

        flink.add_jars(*(p.resolve().as_uri() for p in kafka_jars()))
    return flink


def build(flink: StreamExecutionEnvironment, cfg: JobConfig, max_events: int | None = None) -> None:
    """Add the whole job to ``flink``; run it with ``flink.execute``."""
    cfg_json = cfg.model_dump_json()
    # Keyed by the subtask each batch is meant for: the trainer and the sink keep their
    # exactly-once anchor + tail in keyed state (flinkdl/pipeline/recovery.py).
    keys = subtask_keys(cfg.job.parallelism)
    if cfg.sinks.kafka is not None and cfg.sinks.kafka.bootstrap_servers is None and cfg.source.kafka is None:
        raise ValueError("sinks.kafka.bootstrap_servers is needed when the source is not Kafka")

    def by_index(row: Row) -> int:
        return keys[index_of(row) % len(keys)]

    def by_seq(row: Row) -> int:
        return keys[Envelope.of(row).seq % len(keys)]

    # batch i goes to subtask i % p (GenerateAndTrain relies on it); sync steps on Kafka: take i by offset
    if cfg.source.kind == "generator" or sync_kafka(cfg):
        # at the source's parallelism (1), so the two chain: bare indexes never wait in a network buffer
        # (thousands fit one; a barrier, a savepoint's too, would queue behind them all)
        indexes = (batch_indexes(flink, cfg).map(with_ballast, output_type=INDEX_TYPE).name("ballast")
                   .set_parallelism(1))
        by_subtask = indexes.key_by(by_index, key_type=Types.INT())
        if cfg.job.parallelism == 1:  # and publish + evaluate + sink (pipeline/train_sink.py)
            from flinkdl.pipeline.train_sink import GenerateTrainAndSink

            _progress(by_subtask.process(GenerateTrainAndSink(cfg_json, max_events), output_type=Types.STRING())
                      .name("generate+featurize+train+sink"))
            return
        preds = trained = (by_subtask.process(GenerateAndTrain(cfg_json), output_type=ENVELOPE_TYPE)
                           .name("generate+featurize+train"))
    elif trains_in_reader(cfg):  # Kafka read + featurize + train + sink in one operator (parallelism 1)
        _progress(read_and_train(flink, cfg, kafka_section(cfg), max_events))
        return
    else:  # the trainer gets its own chain, so parsing the next batch overlaps training on this one
        events = None
        if cfg.feedback is not None:  # two topics and the event-time label join (docs/FEEDBACK.md)
            from flinkdl.pipeline.feedback_job import feedback_stream

            features, events = feedback_stream(flink, cfg)
        else:
            features = feature_stream(flink, cfg)
        preds = trained = (features.key_by(by_seq, key_type=Types.INT())
                           .process(Train(cfg_json), output_type=ENVELOPE_TYPE).name("train"))
        if events is not None:
            from flinkdl.pipeline.feedback_job import feedback_tail

            preds = feedback_tail(preds, events, cfg)
    if cfg.job.exactly_once and cfg.job.parallelism > 1:  # the PS model of each checkpoint (a lane cut)
        from flinkdl.pipeline.ps_cut import add_ps_cut

        add_ps_cut(trained, cfg_json)
    if cfg.sinks.kafka is not None:  # acknowledged on the topic before it is evaluated
        from flinkdl.pipeline.kafka_out import PublishKafka

        preds = preds.map(PublishKafka(cfg_json), output_type=ENVELOPE_TYPE).name("publish-kafka").start_new_chain()
    if cfg.job.parallelism > 1:  # each subtask evaluates its own share; one aggregator merges counts
        from flinkdl.pipeline.partial_eval import evaluate_in_parallel

        evaluate_in_parallel(preds, cfg_json, cfg.job.parallelism, max_events)
        return
    _progress(preds.key_by(lambda row: 0, key_type=Types.INT())
              .process(EvaluateAndSink(cfg_json, max_events), output_type=Types.STRING())
              .name("evaluate+sink").set_parallelism(1))


def _first_configuration(jvm_args: str | None) -> Configuration:
    """A Configuration; the first one starts PyFlink's local gateway JVM, with ``jvm_args`` unless the
    user set ``JVM_ARGS`` (only for that start: jobs started later, child processes too, do not inherit it)."""
    if jvm_args is None or JVM_ARGS_ENV in os.environ:
        return Configuration()
    os.environ[JVM_ARGS_ENV] = jvm_args
    try:
        return Configuration()
    finally:
        del os.environ[JVM_ARGS_ENV]


def _progress(sunk: DataStream) -> None:
    """The end of a parallelism-1 job: the sink's output (none: it writes the run's files) to stdout."""
    sunk.print().name("progress").set_parallelism(1)
