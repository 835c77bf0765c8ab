"""Coalescing event-time windows into training batches (no Flink: the state and timers are stand-ins)."""

from __future__ import annotations

from pyflink.common import Row

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.pipeline.feedback_coalesce import CoalescedFeatures, batch_closes, known_time


class _Value:
    def __init__(self) -> None:
        self.v: object = None

    def value(self) -> object:
        return self.v

    def update(self, v: object) -> None:
        self.v = v

    def clear(self) -> None:
        self.v = None


class _List:
    def __init__(self) -> None:
        self.items: list = []

    def add(self, v: object) -> None:
        self.items.append(v)

    def get(self) -> list:
        return list(self.items)

    def clear(self) -> None:
        self.items = []


class _Timers:
    def __init__(self) -> None:
        self.registered: list[int] = []

    def current_processing_time(self) -> int:
        return 0

    def register_processing_time_timer(self, t: int) -> None:
        self.registered.append(t)


class _Ctx:
    def __init__(self) -> None:
        self.timers = _Timers()

    def timer_service(self) -> _Timers:
        return self.timers


class _Batches:
    """Records each batch (the messages :class:`OrderedFeatures` would featurize)."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def flat_map(self, element: Row):
        self.batches.append(list(element[0]))
        yield from ()


def _msg(tt: int, eid: int) -> bytes:
    return f"{tt:016d}{eid:020d}0".encode() + b"{}"


def _coalescer(**fb: object) -> tuple[CoalescedFeatures, _Batches]:
    op = CoalescedFeatures("{}")
    op.fb = FeedbackConfig(topic="c", event_time_batches=True, **fb)
    op.features, op.idle_ms = _Batches(), 1000  # type: ignore[assignment]
    op.held, op.size, op.last_seen, op.timer_at = _List(), _Value(), None, None  # type: ignore[assignment]
    return op, op.features  # type: ignore[return-value]


def _windows(n: int, rows: int, ms: int = 200) -> list[list[bytes]]:
    return [[_msg(w * ms + r, w * rows + r) for r in range(rows)] for w in range(n)]


def test_known_time_and_the_bounds():
    fb = FeedbackConfig(topic="c", coalesce_rows=10, coalesce_span_s=1)
    assert known_time(_msg(1_700_000_000_123, 5)) == 1_700_000_000_123
    assert not batch_closes(9, 0, 999, fb)
    assert batch_closes(10, 0, 0, fb) and batch_closes(1, 0, 1000, fb)


def test_windows_are_coalesced_until_the_rows_or_the_span_and_cut_alike_in_every_run():
    windows = _windows(12, 4)  # 4 messages per 200 ms window
    cuts = []
    for _ in range(2):
        op, out = _coalescer(coalesce_rows=10, coalesce_span_s=100)
        ctx = _Ctx()
        for w in windows:
            list(op.process_element(Row(w, len(w)), ctx))
        cuts.append([len(b) for b in out.batches])
        flat = [m for b in out.batches for m in b]
        assert flat == [m for w in windows for m in w][:len(flat)]  # in order, none lost or repeated
    assert cuts[0] == cuts[1] == [12, 12, 12, 12]  # 3 windows each reach 10 rows
    op, out = _coalescer(coalesce_rows=1000, coalesce_span_s=0.4)  # the span: 3 windows of 200 ms
    for w in windows:
        list(op.process_element(Row(w, len(w)), _Ctx()))
    assert [len(b) for b in out.batches] == [12, 12, 12, 12]


def test_the_idle_flush_cuts_only_after_a_window_in_this_process():
    op, out = _coalescer(coalesce_rows=100)
    ctx = _Ctx()
    list(op.process_element(Row(_windows(1, 3)[0], 3), ctx))
    assert out.batches == [] and ctx.timers.registered == [1000]
    op.last_seen = -10.0  # long ago: idle
    list(op.on_timer(1000, ctx))
    assert [len(b) for b in out.batches] == [3] and op.size.value() is None
    op.held.add(_windows(1, 2)[0])  # a restored batch: no window seen by this process yet
    op.size.update((2, 0, 1))
    op.last_seen = None
    list(op.on_timer(1000, ctx))
    assert len(out.batches) == 1  # held until the next window
