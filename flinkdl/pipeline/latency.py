"""Size the timers on the Kafka → prediction path from one latency target (``job.max_latency_ms``).

Every hop adds its own wait: the JVM window that groups messages (``source.kafka.batch_ms``),
each PyFlink bundle (closed on ``python.fn-execution.bundle.size`` elements or ``.bundle.time``),
and each network exchange (Flink flushes a partly filled buffer after
``execution.buffer-timeout.interval``). The rule (docs/KAFKA.md, "Latency"): with ``L`` =
``max_latency_ms``, the window is ``L/5`` (a message waits half of it on average, all of it at
worst), every bundle closes after one element (an element is already a whole window's batch) or
``L/10``, and buffers flush after ``L/25`` (about four exchanges sit on the path). The timers then
add up to well under ``L`` at worst, leaving the rest to parsing, scoring and the broker. The
publisher already flushes after every batch, so it needs no setting. ``null`` keeps the bulk
settings (200 ms windows, bundles of 1000 elements or 100 ms, Flink's 100 ms buffer timeout).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyBudget:
    """The timer settings derived from a latency target."""

    window_ms: int
    bundle_size: int
    bundle_time_ms: int
    buffer_timeout_ms: int

    def flink_options(self) -> dict[str, str]:
        """The Flink / PyFlink configuration keys this budget sets."""
        return {
            "python.fn-execution.bundle.size": str(self.bundle_size),
            "python.fn-execution.bundle.time": str(self.bundle_time_ms),
            "execution.buffer-timeout.interval": f"{self.buffer_timeout_ms}ms",
        }


def budget(max_latency_ms: int) -> LatencyBudget:
    """The timer settings for a target of ``max_latency_ms`` end to end (see the module docstring)."""
    return LatencyBudget(window_ms=max(1, max_latency_ms // 5), bundle_size=1,
                         bundle_time_ms=max(1, max_latency_ms // 10),
                         buffer_timeout_ms=max(1, max_latency_ms // 25))
