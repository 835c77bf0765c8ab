"""Event-time training batches of a useful size: consecutive closed windows coalesced (docs/FEEDBACK.md).

With ``feedback.event_time_batches`` the join's messages reach Python per event-time window of
``feedback.batch_ms``: in a replay or at a low event rate a window holds a few rows, and the trainer
would run a step per window. :class:`CoalescedFeatures` holds consecutive windows back until they hold
``feedback.coalesce_rows`` messages, or their known times span ``feedback.coalesce_span_s`` (the
serving latency a live stream pays), then featurizes them as one sorted batch. Both bounds depend
on the data only (the windows' order and contents), so every replay and every restore cuts the same
batches. Where determinism ends: the idle flush, a batch cut after ``feedback.coalesce_idle_s`` of
processing time without a new window (a stream that pauses).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from pyflink.common import Row, Types
from pyflink.datastream import RuntimeContext
from pyflink.datastream.functions import KeyedProcessFunction
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.pipeline.operator import open_operator, section

#: The characters of a message's sort key that hold its known time (``feedback_sql.sort_key_sql``).
TT_CHARS = 16


def known_time(msg: bytes) -> int:
    """The known event time (ms) in a message's sort key.

    >>> known_time(b"0001700000000123" + b"0" * 21 + b"{}")
    1700000000123
    """
    return int(msg[:TT_CHARS])


def batch_closes(rows: int, first_tt: int, last_tt: int, fb: FeedbackConfig) -> bool:
    """Whether a coalesced batch of ``rows`` messages with known times ``first_tt..last_tt`` is complete."""
    return rows >= fb.coalesce_rows or last_tt - first_tt >= fb.coalesce_span_ms


class CoalescedFeatures(KeyedProcessFunction):
    """Keyed by a constant: ``Row(msgs, n)`` event-time windows (in window order) → feature envelopes of
    coalesced windows (:func:`batch_closes`), featurized by
    :class:`~flinkdl.pipeline.feedback.OrderedFeatures` (sorted by the messages' keys).

    The windows held back are keyed state (in checkpoints: a restore resumes the same batch). A
    processing-time timer flushes a batch when no window came for ``coalesce_idle_s``; after a
    restore it waits for the first window (a source that restarts slowly does not cut a batch).
    """

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.pipeline.feedback import OrderedFeatures

        cfg = open_operator(self.cfg_json)
        self.fb = section(cfg.feedback, "feedback")
        self.features = OrderedFeatures(self.cfg_json)
        self.features.open(ctx)
        self.idle_ms = int(self.fb.coalesce_idle_s * 1000)
        self.held = ctx.get_list_state(ListStateDescriptor("windows", Types.PICKLED_BYTE_ARRAY()))
        self.size = ctx.get_state(ValueStateDescriptor("size", Types.PICKLED_BYTE_ARRAY()))
        self.last_seen: float | None = None  # monotonic time of this process's last window
        self.timer_at: int | None = None

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        msgs = [bytes(m) for m in value[0]]
        self.last_seen = time.monotonic()
        if not msgs:
            return
        times = [known_time(m) for m in msgs]
        rows, first, last = self.size.value() or (0, min(times), 0)
        rows, last = rows + len(msgs), max(last, *times)
        if batch_closes(rows, first, last, self.fb):
            yield from self._flush(msgs)
            return
        self.held.add(msgs)
        self.size.update((rows, first, last))
        if self.timer_at is None:
            timers = ctx.timer_service()
            self.timer_at = timers.current_processing_time() + self.idle_ms
            timers.register_processing_time_timer(self.timer_at)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        self.timer_at = None
        if self.last_seen is None or self.size.value() is None:  # restored: wait for a window first
            return
        idle_ms = (time.monotonic() - self.last_seen) * 1000
        if idle_ms >= self.idle_ms:
            yield from self._flush([])
            return
        timers = ctx.timer_service()
        self.timer_at = timers.current_processing_time() + self.idle_ms - int(idle_ms)
        timers.register_processing_time_timer(self.timer_at)

    def _flush(self, tail: list[bytes]) -> Iterator[Row]:
        """The held windows and ``tail`` as one batch's envelopes; the state cleared."""
        msgs = [m for window in self.held.get() or () for m in window] + tail
        self.held.clear()
        self.size.clear()
        if msgs:
            yield from self.features.flat_map(Row(msgs, len(msgs)))
