"""Prometheus metrics of the publisher, on the publishing worker's ``/metrics`` endpoint."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from flinkdl.publish.gate import Decision
from flinkdl.telemetry import names as n

if TYPE_CHECKING:
    from flinkdl.telemetry.exporter import MetricsEndpoint


class PublishMetrics:
    """Published and refused versions, the gate's last numbers and the last publish latency."""

    def __init__(self, endpoint: MetricsEndpoint) -> None:
        lb = endpoint.labels
        self.published = endpoint.counter(n.PUBLISH_PUBLISHED, "Versions published").labels(**lb)
        self.refused = endpoint.counter(n.PUBLISH_REFUSED, "Versions refused by the quality gate").labels(**lb)
        self.refused_auc = endpoint.gauge(n.PUBLISH_REFUSED_AUC, "Window AUC of the last refused version").labels(
            **lb)
        self.gate_auc = endpoint.gauge(n.PUBLISH_GATE_AUC, "Window AUC at the last gate check").labels(**lb)
        self.gate_calibration = endpoint.gauge(n.PUBLISH_GATE_CALIBRATION,
                                               "Mean score / observed rate at the last gate check").labels(**lb)
        self.version = endpoint.gauge(n.PUBLISH_VERSION, "Last published version").labels(**lb)
        self.latency = endpoint.gauge(n.PUBLISH_LATENCY_SECONDS, "PS commit to version on disk, last one").labels(
            **lb)
        self.refused.inc(0)
        self.published.inc(0)

    def checked(self, d: Decision) -> None:
        auc = math.nan if d.metrics.auc is None else d.metrics.auc
        cal = d.metrics.calibration
        self.gate_auc.set(auc)
        self.gate_calibration.set(math.nan if cal is None else cal)
        if not d.passed:
            self.refused.inc()
            self.refused_auc.set(auc)

    def done(self, version: int, latency_s: float) -> None:
        self.published.inc()
        self.version.set(version)
        self.latency.set(latency_s)
