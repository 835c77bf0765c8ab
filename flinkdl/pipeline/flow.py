"""Flow control on the job's stream: the wall-clock throttle and the batch index with ballast."""

from __future__ import annotations

import time

from pyflink.common import Row, Types


class Throttle:
    """At most ``rate`` units per second of wall time (a call to :meth:`wait` takes ``units``, one
    by default), never in bursts: a call that comes late (the job was backpressured) does not
    earn credit for the calls after it.

    >>> t = Throttle(1000.0); t.wait(); t.wait()  # the second call returns ~1 ms after the first
    """

    def __init__(self, rate: float) -> None:
        self.interval, self.next = 1.0 / rate, 0.0

    def wait(self, units: float = 1.0) -> None:
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + units * self.interval


def throttle(rate: float | None) -> Throttle | None:
    """A :class:`Throttle` of ``rate``, or ``None`` when there is no limit."""
    return Throttle(rate) if rate else None


#: A batch index on its way to the trainer, with 32 KiB of ballast. Flink's credit-based flow
#: control counts network buffers (32 KiB), not records: with one buffer per index only a few
#: indexes wait in the network, so a checkpoint or savepoint barrier does not queue behind a
#: long backlog of batches (docs/STACK_NOTES.md).
INDEX_TYPE = Types.ROW_NAMED(["index", "ballast"], [Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
_BALLAST = bytes(32 << 10)


def with_ballast(index: int) -> Row:
    """The :data:`INDEX_TYPE` row of a batch index."""
    return Row(index, _BALLAST)


def index_of(row: Row) -> int:
    """The batch index of an :data:`INDEX_TYPE` row."""
    return int(row[0])
