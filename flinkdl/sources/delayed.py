"""The built-in stream with delayed feedback: impressions without a label, and clicks that arrive later.

Each positive of :class:`~flinkdl.sources.generator.ClickStream` becomes a click event at
``ts + delay``, the delay drawn from the mixture of
:class:`~flinkdl.config.feedback.DelayConfig` (a fast exponential part and a slow log-normal
part, scaled). :meth:`DelayedStream.events` yields both in event-time order at batch granularity:
an impression batch, then every click due by that batch's last event time.

>>> from flinkdl.config.feedback import DelayConfig
>>> from flinkdl.sources.generator import ClickStream
>>> d = DelayedStream(ClickStream(seed=1), DelayConfig(scale=1 / 60))
>>> kinds = [(kind, b.num_rows) for kind, b in d.events(2000, 1000)]
>>> [k for k, _ in kinds][:2], sum(n for k, n in kinds if k == "impressions")
(['impressions', 'clicks'], 2000)
>>> "label" in next(d.events(10, 10))[1].schema.names
False
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from flinkdl.config.feedback import DelayConfig
from flinkdl.sources.generator import SCHEMA, ClickStream

CLICK_SCHEMA = pa.schema([("event_id", pa.int64()), ("ts", pa.int64()), ("label", pa.int64())])
_INTS = pa.schema([pa.field(n, pa.int64()) for n in SCHEMA.names if n != "label"])


def draw_delays_s(n: int, rng: np.random.Generator, cfg: DelayConfig) -> np.ndarray:
    """``n`` feedback delays in seconds of event time (the mixture, times ``cfg.scale``)."""
    fast = rng.random(n) < cfg.fast_share
    d = np.where(fast, rng.exponential(cfg.fast_mean_s, n),
                 cfg.slow_median_s * np.exp(cfg.slow_sigma * rng.standard_normal(n)))
    return d * cfg.scale


class DelayedStream:
    """Impressions and delayed clicks of a :class:`ClickStream` (see the module docstring)."""

    def __init__(self, stream: ClickStream, delay: DelayConfig) -> None:
        self.stream, self.delay = stream, delay

    def batch(self, index: int, size: int) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """``(impressions without label, clicks)`` of the stream's batch ``index``; clicks are not sorted."""
        b = self.stream.batch(index, size)
        label = b.column("label").to_numpy()
        pos = np.flatnonzero(label == 1)
        rng = np.random.default_rng(np.random.SeedSequence([self.delay.seed, index, size]))
        delay_ms = np.round(draw_delays_s(len(pos), rng, self.delay) * 1000).astype(np.int64)
        clicks = pa.RecordBatch.from_arrays(
            [pa.array(b.column("event_id").to_numpy()[pos]), pa.array(b.column("ts").to_numpy()[pos] + delay_ms),
             pa.array(np.ones(len(pos), np.int64))], schema=CLICK_SCHEMA)
        impressions = b.drop_columns(["label"]).cast(_INTS)
        return impressions, clicks

    def events(self, limit: int, batch_size: int = 4096) -> Iterator[tuple[str, pa.RecordBatch]]:
        """``("impressions" | "clicks", batch)`` of the first ``limit`` events, in event-time order."""
        due: list[tuple[int, int]] = []  # (click ts, event id)
        for i in range(-(-limit // batch_size)):
            n = min(batch_size, limit - i * batch_size)
            imp, clicks = self.batch(i, batch_size)
            imp = imp.slice(0, n)
            for eid, ts in zip(clicks.column("event_id").to_pylist(), clicks.column("ts").to_pylist(), strict=True):
                if eid < i * batch_size + n:
                    heapq.heappush(due, (ts, eid))
            yield "impressions", imp
            last = imp.column("ts")[-1].as_py()
            ready = []
            while due and due[0][0] <= last:
                ready.append(heapq.heappop(due))
            if ready:
                yield "clicks", _clicks(ready)
        rest = [heapq.heappop(due) for _ in range(len(due))]
        for off in range(0, len(rest), batch_size):
            yield "clicks", _clicks(rest[off:off + batch_size])


def _clicks(due: list[tuple[int, int]]) -> pa.RecordBatch:
    ts, ids = zip(*due, strict=True)
    return pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), pa.array(ts, pa.int64()),
                                       pa.array(np.ones(len(ids), np.int64))], schema=CLICK_SCHEMA)
