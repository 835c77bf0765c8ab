"""The feedback job's settled-label metrics on their own ``/metrics`` endpoint (component ``feedback``).

:class:`FeedbackMetrics` publishes a :meth:`~flinkdl.feedback.evaluation.SettledEvaluator.summary`:
quality of the serving scores against settled labels, and the join's counters (late feedback under
:data:`~flinkdl.telemetry.names.FEEDBACK_LATE`, the rest under
:data:`~flinkdl.telemetry.names.FEEDBACK_JOIN_EVENTS`). Counters follow the summary's cumulative
counts (after a restore the summary is the checkpoint's, so they neither drop nor double).
"""

from __future__ import annotations

from typing import Any

from flinkdl.config.schema import JobConfig
from flinkdl.telemetry import names as n
from flinkdl.telemetry.exporter import MetricsEndpoint, _num

#: Join counters that are late feedback (the rest go to FEEDBACK_JOIN_EVENTS).
LATE_KINDS = ("late_events", "late_positive")


class FeedbackMetrics:
    """Settled AUC, log loss, calibration, settled and pending counts, late and other join counters."""

    def __init__(self, cfg: JobConfig) -> None:
        port = cfg.metrics.port + 1 + cfg.job.parallelism if cfg.metrics.port else 0
        self.endpoint = e = MetricsEndpoint(cfg, "feedback", 0, port)
        lb = e.labels
        self.auc = e.gauge(n.SETTLED_AUC, "Cumulative AUC of serving scores vs settled labels").labels(**lb)
        self.logloss = e.gauge(n.SETTLED_LOGLOSS, "Cumulative log loss of serving scores").labels(**lb)
        self.calibration = e.gauge(n.SETTLED_CALIBRATION, "Mean serving score / settled positive rate").labels(**lb)
        self.mean_score = e.gauge(n.SETTLED_MEAN_SCORE, "Mean serving score of settled impressions").labels(**lb)
        self.rate = e.gauge(n.SETTLED_OBSERVED_RATE, "Settled positive rate").labels(**lb)
        self.settled = e.counter(n.SETTLED_EVENTS, "Impressions settled and paired with a score").labels(**lb)
        self.pending = e.gauge(n.SETTLED_PENDING, "Serving scores waiting for their settled label").labels(**lb)
        self.late = e.counter(n.FEEDBACK_LATE, "Late feedback by kind", "kind")
        self.join = e.counter(n.FEEDBACK_JOIN_EVENTS, "The label join's counters by kind", "kind")
        for kind in LATE_KINDS:  # present from the start (rate() sees the first one)
            self.late.labels(**lb, kind=kind)
        self._seen: dict[str, float] = {}

    def start(self) -> int:
        return self.endpoint.start()

    def publish(self, summary: dict[str, Any]) -> None:
        """A summary of :class:`~flinkdl.feedback.evaluation.SettledEvaluator` (cumulative figures)."""
        total = summary["total"]
        self.auc.set(_num(total["auc"]))
        self.logloss.set(_num(total["logloss"]))
        self.calibration.set(_num(total["calibration"]))
        self.mean_score.set(_num(total["mean_score"]))
        self.rate.set(_num(total["observed_rate"]))
        self.pending.set(summary["scores_pending"])
        self._advance("settled", self.settled, summary["settled"])
        for kind, count in summary["join"].items():
            family = self.late if kind in LATE_KINDS else self.join
            self._advance(kind, family.labels(**self.endpoint.labels, kind=kind), count)

    def _advance(self, key: str, counter: Any, total: float) -> None:
        counter.inc(max(0.0, total - self._seen.get(key, 0.0)))
        self._seen[key] = max(total, self._seen.get(key, 0.0))

    def stop(self) -> None:
        self.endpoint.stop()
