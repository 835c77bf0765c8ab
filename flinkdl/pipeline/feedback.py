"""The Flink operators of the feedback job: the keyed label join, the FN calibration and the settled evaluation.

:class:`FeedbackJoin` keeps one :class:`~flinkdl.feedback.join.Pending` per id in Flink keyed
state (TTL as a safety net) with event-time timers, and applies the rules of
:class:`~flinkdl.feedback.join.JoinCore`. Its main output is JSON messages (impressions to serve,
joined examples to train) that the JVM batches for ``KafkaFeatures``; its side output
(:data:`EVENTS`) carries settled labels and the join's counters to :class:`SettledEvaluation`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, MapFunction, OutputTag, RuntimeContext
from pyflink.datastream.functions import KeyedCoProcessFunction

from flinkdl.exchange.channel import pack, unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.feedback.join import JoinCore, Step
from flinkdl.pipeline.operator import open_operator, section

#: The join's main output: one JSON message per row (``msg``).
MESSAGE_TYPE = Types.ROW_NAMED(["msg"], [Types.PRIMITIVE_ARRAY(Types.BYTE())])
#: Side output: ``kind`` = ``settle`` (with ``label``) or the name of a counter.
EVENT_TYPE = Types.ROW_NAMED(["kind", "id", "ts", "label"], [Types.STRING(), Types.LONG(), Types.LONG(), Types.INT()])
EVENTS = OutputTag("feedback-events", EVENT_TYPE)
#: Where :class:`SettledEvaluation` writes its reports (a JSON line each; the last is the newest).
FEEDBACK_LOG = "feedback.jsonl"


class FeedbackJoin(KeyedProcessFunction):
    """Keyed by impression id: ``Row(src, eid, ts_ms, msg)`` (src 0 = impression, 1 = feedback) → messages."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from pyflink.common.time import Time
        from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

        cfg = open_operator(self.cfg_json)
        self.fb = section(cfg.feedback, "feedback")
        self.core = JoinCore(self.fb, cfg.features.label.column)
        slack_s = self.fb.out_of_orderness_s + (self.fb.idle_timeout_s or 0.0)
        ttl_ms = self.fb.window_ms + self.fb.grace_ms + int(slack_s * 1000)
        desc = ValueStateDescriptor("pending", Types.PICKLED_BYTE_ARRAY())
        desc.enable_time_to_live(StateTtlConfig.new_builder(Time.milliseconds(max(ttl_ms, 1000))).build())
        self.state = ctx.get_state(desc)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        src, eid, ts, msg = value[0], value[1], value[2], bytes(value[3] or b"")
        if eid is None or ts is None or eid < 0:
            yield EVENTS, Row("bad_message", -1, 0, 0)
            return
        wm = ctx.timer_service().current_watermark()
        if src == 0:
            try:
                step = self.core.impression(self.state.value(), msg, ts, wm)
            except ValueError:
                yield EVENTS, Row("bad_message", eid, ts, 0)
                return
        else:
            try:
                positive = self.fb.is_positive(json.loads(msg).get(self.fb.label_field))
            except (ValueError, AttributeError):
                positive = None
            if positive is None:
                yield EVENTS, Row("no_label", eid, ts, 0)
                return
            step = self.core.feedback(self.state.value(), positive, ts, wm)
        yield from self._apply(step, eid, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        yield from self._apply(self.core.timer(self.state.value(), timestamp), ctx.get_current_key(), ctx)

    def _apply(self, step: Step, eid: int, ctx: KeyedProcessFunction.Context) -> Iterator:
        if step.state is None:
            self.state.clear()
        else:
            self.state.update(step.state)
        for t in step.timers:
            ctx.timer_service().register_event_time_timer(t)
        for out in step.outputs:
            if out.kind == "settle":
                yield EVENTS, Row("settle", eid, out.imp_ts, out.label)
            else:
                yield Row(out.message)
        for name, n in step.counts.items():
            for _ in range(n):
                yield EVENTS, Row(name, eid, 0, 0)


class CalibrateScores(MapFunction):
    """Prediction envelopes with every score through :func:`~flinkdl.feedback.calibration.fn_calibrate`."""

    def map(self, value: Row) -> Row:
        import pyarrow as pa

        from flinkdl.feedback.calibration import fn_calibrate

        env = Envelope.of(value)
        preds = unpack(env.payload, PREDICTION_SCHEMA)
        if not preds.num_rows:
            return value
        at = PREDICTION_SCHEMA.get_field_index("score")
        scores = fn_calibrate(preds.column("score").to_numpy())
        return env.with_payload(pack(preds.set_column(at, "score", pa.array(scores, pa.float32())))).row()


class SettledEvaluation(KeyedCoProcessFunction):
    """Parallelism 1: serving scores (input 1, the unlabelled rows of prediction envelopes) and the
    join's events (input 2) into a :class:`~flinkdl.feedback.evaluation.SettledEvaluator`, reported
    to ``RUN_DIR/feedback.jsonl`` at most every ``job.report_every_s`` (and once after a pause)."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.feedback.evaluation import SettledEvaluator

        cfg = open_operator(self.cfg_json)
        fb = section(cfg.feedback, "feedback")
        self.evaluator = SettledEvaluator(window_ms=fb.eval_window_ms)
        self.every_s = cfg.job.report_every_s
        self.path = Path(cfg.job.run_dir) / FEEDBACK_LOG
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last = 0.0
        self.dirty = False
        self.flush_at: int | None = None

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator:
        preds = unpack(Envelope.of(value).payload, PREDICTION_SCHEMA)
        if preds.num_rows:
            unlabelled = preds.column("label").is_null().to_numpy(zero_copy_only=False)
            if unlabelled.any():
                ids = preds.column("event_id").to_numpy()[unlabelled]
                self.evaluator.served(ids, preds.column("score").to_numpy()[unlabelled].astype(np.float64))
        yield from self._touched(ctx)

    def process_element2(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator:
        if value[0] == "settle":
            self.evaluator.settle(value[1], value[2], value[3])
        else:
            self.evaluator.count(value[0])
        yield from self._touched(ctx)

    def _touched(self, ctx: KeyedCoProcessFunction.Context) -> Iterator:
        self.dirty = True
        if time.time() - self.last >= self.every_s:
            self._write()
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        if self.flush_at is None or self.flush_at < now:
            self.flush_at = now + int(self.every_s * 1000)
            timers.register_processing_time_timer(self.flush_at)
        yield from ()

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Iterator:
        if self.dirty:
            self._write()
        yield from ()

    def _write(self) -> None:
        self.last, self.dirty = time.time(), False
        with open(self.path, "a") as f:
            f.write(json.dumps({"t": self.last, **self.evaluator.summary()}) + "\n")

    def close(self) -> None:
        if getattr(self, "dirty", False):
            self._write()

