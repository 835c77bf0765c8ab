"""The feedback job's front: two topics → event-time label join → feature envelopes (docs/FEEDBACK.md).

::

    impressions topic ┐ (SQL: id, event time, WATERMARK bounded out-of-orderness, idle timeout)
    feedback topic ───┴ UNION ALL ─keyBy id─► FeedbackJoin ─► messages ─ARRAY_AGG window─► KafkaFeatures ─► (Train)
                                                  └─ side output: settled labels, counters ─► SettledEvaluation

The id and event time are read from the JSON messages in the JVM (``JSON_VALUE``), so the
watermark is Flink's own, per Kafka partition, with ``table.exec.source.idle-timeout``.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.exchange.envelope import ENVELOPE_TYPE
from flinkdl.pipeline.feedback import EVENTS, MESSAGE_TYPE, CalibrateScores, FeedbackJoin, SettledEvaluation
from flinkdl.pipeline.operator import section


def topic_ddl(k: KafkaSourceConfig, table: str, fb: FeedbackConfig) -> str:
    """The topic as a table: ``msg``, ``eid`` and ``ts_ms`` from its JSON, and an event-time watermark."""
    from flinkdl.sources.kafka import table_ddl

    def field(name: str) -> str:
        return f"TRY_CAST(JSON_VALUE(CAST(msg AS STRING), '$.{name}') AS BIGINT)"

    columns = (f"msg BYTES, eid AS {field(fb.id_field)}, ts_ms AS {field(fb.ts_field)}, "
               f"ets AS TO_TIMESTAMP_LTZ(COALESCE({field(fb.ts_field)}, 0), 3), "
               f"WATERMARK FOR ets AS ets - INTERVAL '{fb.out_of_orderness_s:.3f}' SECOND")
    ddl = table_ddl(k, table)
    head = f"CREATE TEMPORARY TABLE {table} (msg BYTES, pt AS PROCTIME())"
    assert ddl.startswith(head), ddl  # the shared DDL's column list, replaced by ours
    return f"CREATE TEMPORARY TABLE {table} ({columns})" + ddl[len(head):]


def feedback_stream(flink: StreamExecutionEnvironment, cfg: JobConfig) -> tuple[DataStream, DataStream]:
    """``(feature envelopes for Train, the join's side output of events)``."""
    from pyflink.table import DataTypes, Schema, StreamTableEnvironment

    from flinkdl.pipeline.kafka_in import KafkaFeatures

    fb, k = section(cfg.feedback, "feedback"), section(cfg.source.kafka, "source.kafka")
    cfg_json = cfg.model_dump_json()
    tenv = StreamTableEnvironment.create(flink)
    if fb.idle_timeout_s is not None:
        tenv.get_config().set("table.exec.source.idle-timeout", f"{int(fb.idle_timeout_s * 1000)} ms")
    feedback_topic = k.model_copy(update={"topic": fb.topic, "group_id": fb.group_id or f"{k.group_id}-feedback"})
    tenv.execute_sql(topic_ddl(k, "fb_impressions", fb))
    tenv.execute_sql(topic_ddl(feedback_topic, "fb_feedback", fb))
    both = tenv.sql_query("SELECT 0 AS src, eid, ts_ms, msg FROM fb_impressions "
                          "UNION ALL SELECT 1 AS src, eid, ts_ms, msg FROM fb_feedback")
    joined = (tenv.to_data_stream(both).key_by(lambda r: r[1] if r[1] is not None else -1, key_type=Types.LONG())
              .process(FeedbackJoin(cfg_json), output_type=MESSAGE_TYPE).name("feedback-join"))
    events = joined.get_side_output(EVENTS)
    table = tenv.from_data_stream(joined, Schema.new_builder().column("msg", DataTypes.BYTES())
                                  .column_by_expression("pt", "PROCTIME()").build())
    tenv.create_temporary_view("fb_joined", table)
    chunks = tenv.sql_query(f"""
        SELECT ARRAY_AGG(msg) AS msgs, COUNT(*) AS n FROM fb_joined
        GROUP BY TUMBLE(pt, INTERVAL '{fb.batch_ms / 1000:.3f}' SECOND)""")
    features = tenv.to_data_stream(chunks).flat_map(KafkaFeatures(cfg_json), output_type=ENVELOPE_TYPE).name(
        "joined+featurize")
    return features, events


def feedback_tail(preds: DataStream, events: DataStream, cfg: JobConfig) -> DataStream:
    """Calibrated predictions (``fake_negative``), with the settled evaluation hung off them."""
    fb = section(cfg.feedback, "feedback")
    if fb.strategy == "fake_negative":
        preds = preds.map(CalibrateScores(), output_type=ENVELOPE_TYPE).name("fn-calibrate")
    (preds.connect(events).key_by(lambda r: 0, lambda r: 0, key_type=Types.INT())
     .process(SettledEvaluation(cfg.model_dump_json()), output_type=Types.STRING())
     .name("settled-evaluation").set_parallelism(1))
    return preds
