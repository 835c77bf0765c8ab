"""The end of the job: every prediction envelope into the run's evaluation and output files."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pyflink.common import Row
from pyflink.datastream import KeyedProcessFunction, RuntimeContext

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import ENVELOPE_TYPE, Envelope
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.pipeline.recovery import ExactlyOnceFunction


def run_length(cfg: JobConfig, max_events: int | None) -> int | None:
    """Events of a bounded run (``--max-events``, else a generator's ``events``); None for an endless
    stream. A bounded stream ends with its last event: the final line must not wait for close(),
    which PyFlink does not call on a standalone cluster (docs/STACK_NOTES.md)."""
    src = cfg.source
    return max_events or (src.generator.events if src.kind == "generator" else None)


class Reporting(ExactlyOnceFunction):
    """A processing-time timer ``job.report_every_s`` after an element that has none pending:
    the subclass's ``on_timer`` reports then (so a stream that pauses is reported up to its end)."""

    def start(self, ctx: RuntimeContext) -> None:
        self._report_ms = int(self.cfg.job.report_every_s * 1000)
        self._flush_at: int | None = None

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        yield from super().process_element(value, ctx)
        self.arm_timer(ctx)

    def arm_timer(self, ctx: KeyedProcessFunction.Context) -> None:
        """A report timer ``job.report_every_s`` from now, unless one is pending."""
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        if self._flush_at is None or self._flush_at < now:
            self._flush_at = now + self._report_ms
            timers.register_processing_time_timer(self._flush_at)


class EvaluateAndSink(Reporting):
    """Parallelism 1: progressive metrics over all subtasks, prediction + dead-letter files,
    and the run's metrics log (``RUN_DIR/metrics.jsonl``, last line = final summary).

    Exactly-once: the anchor is a snapshot file of the counters, metrics and output file sizes
    (every ``job.snapshot_every_s``); ``reset`` loads it and cuts the files back to those sizes.

    A processing-time timer writes a progress line ``job.report_every_s`` after a batch that was
    not reported yet, so a stream that pauses (or is shorter than one report interval) is logged
    up to its last event.
    """

    tail_type = ENVELOPE_TYPE

    def __init__(self, cfg_json: str, max_events: int | None = None) -> None:
        super().__init__(cfg_json)
        self.max_events = max_events

    def start(self, ctx: RuntimeContext) -> None:
        from flinkdl.sinks.run_log import RunLog

        super().start(ctx)
        self.snapshot_every_s = self.cfg.job.snapshot_every_s
        self.progress = RunLog(self.cfg, run_length(self.cfg, self.max_events))
        self._snapshot_t = time.monotonic()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        self.progress.flush()
        yield from ()

    def reset(self, anchor: dict | None) -> dict:
        if anchor is not None:
            self.progress.load_state(anchor["snapshot"])
            return anchor
        return self._snapshot()

    def apply(self, value: Row, replay: bool = False) -> tuple[list, dict | None]:
        env = Envelope.of(value)
        self.progress.update(env.rows_in, unpack(env.payload, PREDICTION_SCHEMA), env.dead_letters,
                             env.eval_columns)
        due = self.exactly_once and time.monotonic() - self._snapshot_t >= self.snapshot_every_s
        return [], self._snapshot() if due and not self.progress.done else None

    def _snapshot(self) -> dict:
        self._snapshot_t = time.monotonic()
        return {"snapshot": str(self.progress.save_state())}

    def close(self) -> None:
        if getattr(self, "progress", None) is not None:
            self.progress.finish()
