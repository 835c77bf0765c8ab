"""The Python operators of the feedback job: the FN calibration and the settled evaluation.

The label join itself is Flink SQL (:mod:`flinkdl.pipeline.feedback_sql`); its events (settled
labels, counters) reach :class:`SettledEvaluation` in chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pyflink.common import Row
from pyflink.datastream import MapFunction, RuntimeContext
from pyflink.datastream.functions import KeyedCoProcessFunction

from flinkdl.exchange.channel import pack, unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.pipeline.feedback_sql import parse_event
from flinkdl.pipeline.operator import open_operator, section

#: Where :class:`SettledEvaluation` writes its reports (a JSON line each; the last is the newest).
FEEDBACK_LOG = "feedback.jsonl"


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
    join's events (input 2: ``Row(msgs, n)``, :func:`~flinkdl.pipeline.feedback_sql.parse_event` payloads)
    into a :class:`~flinkdl.feedback.evaluation.SettledEvaluator`, reported
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
        for payload in value[0]:
            kind, eid, ts, label = parse_event(bytes(payload).decode())
            if kind == "settle":
                self.evaluator.settle(eid, ts, label)
            else:
                self.evaluator.count(kind)
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

