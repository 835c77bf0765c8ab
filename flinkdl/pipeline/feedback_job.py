"""The feedback job's front: two topics → event-time label join in Flink SQL → feature envelopes (docs/FEEDBACK.md).

::

    impressions topic ┐ (SQL: id, event time, WATERMARK bounded out-of-orderness, idle timeout)
    feedback topic ───┴ interval joins (:mod:`~flinkdl.pipeline.feedback_sql`) ─► chan 0: messages ─┐
                                                                               chan 1: events ───┤
          ARRAY_AGG per feedback.batch_ms (JVM; processing or event time) ◄────────────────────┘
          ├─ messages ─► [CoalescedFeatures] OrderedFeatures ─► (Train: scores the unlabelled rows, trains the labelled)
          └─ events (settled labels, counters) ─► SettledEvaluation

The join's state is Flink SQL's (in the JVM, checkpointed); Python sees only batches.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment, Table

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.exchange.envelope import ENVELOPE_TYPE
from flinkdl.pipeline.feedback import CalibrateScores, SettledEvaluation
from flinkdl.pipeline.feedback_sql import (
    EVENTS,
    MESSAGES,
    NOW,
    input_queries,
    interval_sql,
    join_query,
    train_columns,
    views,
)
from flinkdl.pipeline.operator import section


def topic_ddl(k: KafkaSourceConfig, table: str, fb: FeedbackConfig) -> str:
    """The topic as a table: ``msg``, ``eid`` and ``ts_ms`` from its JSON, and an event-time watermark."""
    from flinkdl.sources.kafka import table_ddl

    def field(name: str) -> str:
        return f"TRY_CAST(JSON_VALUE(CAST(msg AS STRING), '$.{name}') AS BIGINT)"

    columns = (f"msg BYTES, eid AS {field(fb.id_field)}, ts_ms AS {field(fb.ts_field)}, "
               f"ets AS TO_TIMESTAMP_LTZ(COALESCE({field(fb.ts_field)}, 0), 3), "
               f"WATERMARK FOR ets AS ets - {interval_sql(int(fb.out_of_orderness_s * 1000))}")
    ddl = table_ddl(k, table)
    head = f"CREATE TEMPORARY TABLE {table} (msg BYTES, pt AS PROCTIME())"
    assert ddl.startswith(head), ddl  # the shared DDL's column list, replaced by ours
    return f"CREATE TEMPORARY TABLE {table} ({columns})" + ddl[len(head):]


def register_inputs(tenv: StreamTableEnvironment, fb: FeedbackConfig, label: str, impressions: str,
                    feedback: str) -> None:
    """Views ``fb_imp_in`` and ``fb_fb_in``: the topics' rows of :func:`input_queries`, materialized by a
    DataStream round trip (each message parsed once), event time in ``rt``, the sources' watermarks."""
    from pyflink.table import Schema

    for name, query in zip(("fb_imp_in", "fb_fb_in"), input_queries(fb, label, impressions, feedback), strict=True):
        rows = tenv.to_data_stream(tenv.sql_query(query))  # stays in the JVM
        tenv.create_temporary_view(name, tenv.from_data_stream(rows, Schema.new_builder().column_by_metadata(
            "rt", "TIMESTAMP_LTZ(3)", "rowtime").watermark("rt", "SOURCE_WATERMARK()").build()))


def shifted_impressions(tenv: StreamTableEnvironment, fb: FeedbackConfig) -> None:
    """View :data:`~flinkdl.pipeline.feedback_sql.NOW`: the valid impressions with a watermark of their own
    on ``bt = tt - (W + G)``, generated from every impression row (the end ticks too).

    The rows that bypass the join (served, fake negatives) are batched on ``bt`` with the join's
    output, whose watermark the join holds back by ``W + G``; the union's watermark is the minimum
    of its inputs', so this input's watermark must be shifted as its rows are: with the source's
    (unshifted) one, a row could reach the window behind a watermark the join's path passed on first.
    """
    from pyflink.table import DataTypes, Schema

    keep, ooo = fb.window_ms + fb.grace_ms, int(fb.out_of_orderness_s * 1000)
    rows = tenv.to_data_stream(tenv.sql_query("SELECT eid, ts_ms, body, tt, ok FROM fb_imp_known"))
    tenv.create_temporary_view("fb_now_all", tenv.from_data_stream(rows, Schema.new_builder().column(
        "eid", DataTypes.BIGINT()).column("ts_ms", DataTypes.BIGINT()).column("body", DataTypes.STRING()).column(
        "tt", DataTypes.BIGINT()).column("ok", DataTypes.BOOLEAN()).column_by_expression(
        "bt", f"TO_TIMESTAMP_LTZ(COALESCE(tt, 0) - {keep}, 3)").watermark("bt", f"bt - {interval_sql(ooo)}").build()))
    tenv.execute_sql(f"CREATE TEMPORARY VIEW {NOW} AS SELECT eid, ts_ms, body, tt FROM fb_now_all WHERE ok")


def join_table(tenv: StreamTableEnvironment, fb: FeedbackConfig, label: str, impressions: str,
               feedback: str) -> Table:
    """The label join over two topic tables (:func:`topic_ddl`): ``Row(chan, payload)`` of :func:`join_query`.

    The topics are read at the environment's parallelism, the joins and the rest of the job's SQL at
    ``fb.sql_parallelism`` (when set).
    """
    register_inputs(tenv, fb, label, impressions, feedback)
    for statement in views(fb, "fb_imp_in", "fb_fb_in"):
        tenv.execute_sql(statement)
    if fb.event_time_batches:
        shifted_impressions(tenv, fb)
    if fb.sql_parallelism is not None:  # from here on: the sources above were translated already
        tenv.get_config().set("table.exec.resource.default-parallelism", str(fb.sql_parallelism))
    joined = tenv.to_data_stream(tenv.sql_query("SELECT * FROM fb_train_join"))  # one join for every branch
    # with a (computed) rowtime and SOURCE_WATERMARK: without a watermark declaration no watermark
    # reaches an event-time window after this round trip
    from pyflink.table import DataTypes, Schema

    schema = Schema.new_builder()
    kinds = {"BIGINT": DataTypes.BIGINT(), "STRING": DataTypes.STRING(), "BOOLEAN": DataTypes.BOOLEAN()}
    for name, kind in train_columns(fb):  # fb_train_join's columns (es_dfm: and the elapsed time e)
        schema = schema.column(name, kinds[kind])
    tenv.create_temporary_view("fb_train", tenv.from_data_stream(joined, schema.column_by_expression(
        "wt", "TO_TIMESTAMP_LTZ(tt, 3)").watermark("wt", "SOURCE_WATERMARK()").build()))
    return tenv.sql_query(join_query(fb, label))


def batches(tenv: StreamTableEnvironment, joined: DataStream, fb: FeedbackConfig) -> tuple[DataStream, DataStream]:
    """The join's ``Row(chan, payload, tt, k)`` as ``(messages, events)`` chunks, ``Row(msgs, n)`` each.

    With ``feedback.event_time_batches`` messages go per event-time window of their known time ``tt``
    (``feedback.batch_ms``), each prefixed by its sort key ``k`` (:class:`~flinkdl.pipeline.feedback.OrderedFeatures`
    sorts and cuts it): the same batches in every run. A message already behind the watermark (a
    late input) goes in processing-time batches instead (counted ``unordered``). Otherwise, and for
    the events always, per processing-time window.
    """
    from pyflink.table import DataTypes, Schema
    from pyflink.table.expressions import call_sql, col
    from pyflink.table.types import DataType

    every = f"INTERVAL '{fb.batch_ms / 1000:.3f}' SECOND"
    if not fb.event_time_batches:
        tenv.create_temporary_view("fb_out", tenv.from_data_stream(joined, Schema.new_builder().column(
            "chan", DataTypes.INT()).column("payload", DataTypes.STRING()).column("tt", DataTypes.BIGINT()).column(
            "k", DataTypes.STRING()).column_by_expression("pt", "PROCTIME()").build()))

        def by_pt(chan: int, body: str) -> DataStream:  # batched per processing-time window, in the JVM
            return tenv.to_data_stream(tenv.sql_query(
                f"SELECT ARRAY_AGG(CAST({body} AS BYTES)) AS msgs, COUNT(*) AS n FROM fb_out WHERE chan = {chan} "
                f"GROUP BY TUMBLE(pt, {every})"))

        return by_pt(MESSAGES, "CONCAT(k, payload)"), by_pt(EVENTS, "payload")

    # bt: the known time shifted back by the join's watermark hold-back (W + G), on the physical watermarks;
    # behind: the message is at or behind the watermark already (computed once: every branch reads one flag)
    keep = fb.window_ms + fb.grace_ms

    def timed(stream: DataStream, *extra: tuple[str, DataType]) -> Table:
        schema = Schema.new_builder().column("chan", DataTypes.INT()).column("payload", DataTypes.STRING()).column(
            "tt", DataTypes.BIGINT()).column("k", DataTypes.STRING())
        for name, kind in extra:
            schema = schema.column(name, kind)
        return tenv.from_data_stream(stream, schema.column_by_expression("pt", "PROCTIME()").column_by_expression(
            "bt", f"TO_TIMESTAMP_LTZ(tt - {keep}, 3)").watermark("bt", "SOURCE_WATERMARK()").build())

    flagged = tenv.to_data_stream(timed(joined).select(col("chan"), col("payload"), col("tt"), col("k"), call_sql(
        "COALESCE(bt <= CURRENT_WATERMARK(bt), FALSE)").alias("behind")))
    tenv.create_temporary_view("fb_out_late", timed(flagged, ("behind", DataTypes.BOOLEAN())))

    def chunks(where: str, time: str) -> DataStream:  # batched per window, in the JVM
        return tenv.to_data_stream(tenv.sql_query(
            f"SELECT ARRAY_AGG(CAST(CONCAT(k, payload) AS BYTES)) AS msgs, COUNT(*) AS n FROM fb_out_late "
            f"WHERE {where} GROUP BY TUMBLE({time}, {every})"))

    messages = chunks(f"chan = {MESSAGES} AND NOT behind", "bt").union(chunks(f"chan = {MESSAGES} AND behind", "pt"))
    # events, and a counter event `unordered` per message that went in a processing-time batch
    payload = f"CASE WHEN chan = {EVENTS} THEN payload ELSE 'unordered,-1,0,0' END"
    events = tenv.to_data_stream(tenv.sql_query(
        f"SELECT ARRAY_AGG(CAST({payload} AS BYTES)) AS msgs, COUNT(*) AS n FROM fb_out_late "
        f"WHERE chan = {EVENTS} OR behind GROUP BY TUMBLE(pt, {every})"))
    return messages, events


def feedback_stream(flink: StreamExecutionEnvironment, cfg: JobConfig) -> tuple[DataStream, DataStream]:
    """``(feature envelopes for Train, chunks of the join's events)``: ``Row(msgs, n)`` each."""
    from flinkdl.pipeline.feedback import OrderedFeatures

    fb, k = section(cfg.feedback, "feedback"), section(cfg.source.kafka, "source.kafka")
    label = cfg.features.label.column
    cfg_json = cfg.model_dump_json()
    tenv = StreamTableEnvironment.create(flink)
    if fb.idle_timeout_s is not None:
        tenv.get_config().set("table.exec.source.idle-timeout", f"{int(fb.idle_timeout_s * 1000)} ms")
    feedback_topic = k.model_copy(update={"topic": fb.topic, "group_id": fb.group_id or f"{k.group_id}-feedback"})
    tenv.execute_sql(topic_ddl(k, "fb_impressions", fb))
    tenv.execute_sql(topic_ddl(feedback_topic, "fb_feedback", fb))
    joined = tenv.to_data_stream(join_table(tenv, fb, label, "fb_impressions", "fb_feedback"))  # stays in the JVM
    messages, events = batches(tenv, joined, fb)
    if fb.event_time_batches and fb.coalesce_rows > 1:  # consecutive windows as one batch (data-cut)
        from flinkdl.pipeline.feedback_coalesce import CoalescedFeatures

        features = (messages.key_by(lambda r: 0, key_type=Types.INT())
                    .process(CoalescedFeatures(cfg_json), output_type=ENVELOPE_TYPE).name("coalesce+featurize"))
    else:
        features = messages.flat_map(OrderedFeatures(cfg_json), output_type=ENVELOPE_TYPE).name("joined+featurize")
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
