"""The Python operators of the feedback job: ordered featurizing, the FN calibration and the settled evaluation.

The label join itself is Flink SQL (:mod:`flinkdl.pipeline.feedback_sql`); its events (settled
labels, counters) reach :class:`SettledEvaluation` in chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pyflink.common import Row, Types
from pyflink.datastream import MapFunction, RuntimeContext
from pyflink.datastream.functions import KeyedCoProcessFunction
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from flinkdl.exchange.channel import pack, unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.feedback.evaluation import SettledEvaluator, Step
from flinkdl.pipeline.feedback_sql import KEY_CHARS, parse_event
from flinkdl.pipeline.kafka_in import KafkaFeatures
from flinkdl.pipeline.operator import open_operator, section

if TYPE_CHECKING:
    from flinkdl.telemetry.feedback import FeedbackMetrics

#: Where :class:`SettledEvaluation` writes its reports (a JSON line each; the last is the newest).
FEEDBACK_LOG = "feedback.jsonl"


class OrderedFeatures(KafkaFeatures):
    """:class:`~flinkdl.pipeline.kafka_in.KafkaFeatures` over a batch of the join's messages, each
    prefixed by its sort key (:func:`~flinkdl.pipeline.feedback_sql.sort_key_sql`): sorted by it, the
    keys cut off, so a batch's envelopes do not depend on the order its rows arrived in. Under ``es_dfm``
    each key is followed by the row's code (:mod:`flinkdl.feedback.esdfm_rows`), cut off too and
    written to the feature batch's ``weight`` column."""

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.feedback.esdfm_rows import RowCodes, needs_weights

        super().open(ctx)
        cfg = open_operator(self.cfg_json)
        self.codes = RowCodes() if needs_weights(cfg.feedback) else None  # es_dfm: each message's code
        self.maker.weights = self.codes

    def flat_map(self, element: Row) -> Iterator[Row]:
        msgs = sorted(bytes(m) for m in element[0])
        if self.codes is None:
            yield from super().flat_map(Row([m[KEY_CHARS:] for m in msgs], len(msgs)))
            return
        from flinkdl.feedback.esdfm_rows import CODE_CHARS

        self.codes.set(self.position, [m[KEY_CHARS:KEY_CHARS + CODE_CHARS] for m in msgs])
        yield from super().flat_map(Row([m[KEY_CHARS + CODE_CHARS:] for m in msgs], len(msgs)))


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
    to ``RUN_DIR/feedback.jsonl`` at most every ``job.report_every_s`` (and once after a pause), and with
    ``metrics.enabled`` to Prometheus (:class:`~flinkdl.telemetry.feedback.FeedbackMetrics`).

    Its state is in Flink's checkpoints (the anchor + tail protocol of :mod:`flinkdl.pipeline.recovery`,
    with the anchor in keyed state itself): a pickled snapshot of the evaluator every
    ``job.snapshot_every_s`` and the input steps since it. After a restore the first element
    rebuilds the evaluator from them, so no pair is lost or counted twice.
    """

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        cfg = open_operator(self.cfg_json)
        fb = section(cfg.feedback, "feedback")
        self.window_ms = fb.eval_window_ms
        self.evaluator: SettledEvaluator | None = None
        self.every_s, self.snapshot_every_s = cfg.job.report_every_s, cfg.job.snapshot_every_s
        self.path = Path(cfg.job.run_dir) / FEEDBACK_LOG
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last = self.snapshot_t = 0.0
        self.dirty = False
        self.flush_at: int | None = None
        self.snapshot = ctx.get_state(ValueStateDescriptor("evaluator", Types.PICKLED_BYTE_ARRAY()))
        self.tail = ctx.get_list_state(ListStateDescriptor("steps", Types.PICKLED_BYTE_ARRAY()))
        self.metrics: FeedbackMetrics | None = None
        if cfg.metrics.enabled:
            from flinkdl.telemetry.feedback import FeedbackMetrics

            self.metrics = FeedbackMetrics(cfg)
            self.metrics.start()

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator:
        preds = unpack(Envelope.of(value).payload, PREDICTION_SCHEMA)
        if preds.num_rows:
            unlabelled = preds.column("label").is_null().to_numpy(zero_copy_only=False)
            if unlabelled.any():
                ids = preds.column("event_id").to_numpy()[unlabelled]
                scores = preds.column("score").to_numpy()[unlabelled].astype(np.float64)
                self._step(("served", ids, scores))
        yield from self._touched(ctx)

    def process_element2(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator:
        self._step(("events", [parse_event(bytes(payload).decode()) for payload in value[0]]))
        yield from self._touched(ctx)

    def _step(self, step: Step) -> None:
        """Apply ``step`` and record it: in the tail, or in a new snapshot that includes it."""
        if self.evaluator is None:  # the first element (after a restore: the checkpoint's state)
            raw = self.snapshot.value()
            self.evaluator = SettledEvaluator.from_bytes(raw) if raw else SettledEvaluator(self.window_ms)
            for old in self.tail.get() or ():
                self.evaluator.apply(old)
            self.snapshot_t = time.monotonic()
        self.evaluator.apply(step)
        if time.monotonic() - self.snapshot_t >= self.snapshot_every_s:
            self.snapshot.update(self.evaluator.to_bytes())
            self.tail.clear()
            self.snapshot_t = time.monotonic()
        else:
            self.tail.add(step)

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
        if self.evaluator is None:
            return
        summary = self.evaluator.summary()
        with open(self.path, "a") as f:
            f.write(json.dumps({"t": self.last, **summary}) + "\n")
        if self.metrics is not None:
            self.metrics.publish(summary)

    def close(self) -> None:
        if getattr(self, "dirty", False):
            self._write()
        metrics = getattr(self, "metrics", None)
        if metrics is not None:
            metrics.stop()
