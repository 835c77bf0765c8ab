"""``/metrics`` endpoints (prometheus_client), one per process, each on its own registry.

:class:`MetricsEndpoint` serves a registry on ``metrics.host`` and a port (0 = a free one) and
writes the chosen address to ``RUN_DIR/prometheus/<component>-<subtask>.json`` in Prometheus
``file_sd`` format, so a scrape config (``deploy/prometheus``) or a test finds it.
:class:`SinkMetrics` publishes the sink's :class:`~flinkdl.evaluation.summary.RunSummary`
and counters, :class:`WorkerMetrics` a worker's steps,
:class:`PSMetrics` a parameter-server client's push/pull latency, lag and version,
:class:`ServingMetrics` a serving subtask's model version and refresh lag;
:class:`FreshnessMetrics` (in both the sink's and a serving subtask's) scoring latency and model age.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from flinkdl.config.schema import JobConfig
from flinkdl.telemetry import names as n

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from flinkdl.evaluation.summary import RunSummary
    from flinkdl.exchange.freshness import Stamps

TARGETS_DIR = "prometheus"


def _num(v: float | None) -> float:
    return math.nan if v is None else float(v)


class MetricsEndpoint:
    """A registry served over HTTP; ``port`` is the bound port after :meth:`start`."""

    def __init__(self, cfg: JobConfig, component: str, subtask: int = 0, port: int | None = None) -> None:
        self.cfg, self.component, self.subtask = cfg, component, subtask
        self.registry = CollectorRegistry()
        self.labels = {"job": cfg.job.name, "model": cfg.model.name, "subtask": str(subtask)}
        self.port = cfg.metrics.port if port is None else port
        self.target_file = Path(cfg.job.run_dir) / TARGETS_DIR / f"{component}-{subtask}.json"
        self._server: WSGIServer | None = None

    def gauge(self, name: str, doc: str, *extra: str) -> Gauge:
        return Gauge(name, doc, [*n.BASE_LABELS, *extra], registry=self.registry)

    def counter(self, name: str, doc: str, *extra: str) -> Counter:
        return Counter(name, doc, [*n.BASE_LABELS, *extra], registry=self.registry)

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...] = n.LATENCY_BUCKETS) -> Histogram:
        return Histogram(name, doc, n.BASE_LABELS, buckets=buckets, registry=self.registry)

    def start(self) -> int:
        """Serve ``/metrics``; write the file_sd target; return the port."""
        server, _ = start_http_server(self.port, addr=self.cfg.metrics.host, registry=self.registry)
        self._server, self.port = server, server.server_port
        self.target_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.target_file.with_name(f".{self.target_file.name}.tmp")
        tmp.write_text(json.dumps([{"targets": [f"{self.cfg.metrics.host}:{self.port}"],
                                    "labels": {"component": self.component}}]))
        os.replace(tmp, self.target_file)  # atomic: Prometheus never reads half a file
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class FreshnessMetrics:
    """Scoring latency and model age, one observation per scored batch (on ``endpoint``)."""

    def __init__(self, endpoint: MetricsEndpoint) -> None:
        lb = endpoint.labels
        self.latency = endpoint.histogram(n.SCORING_LATENCY_SECONDS, "Arrival at featurize to scored").labels(**lb)
        self.model_age = endpoint.histogram(n.MODEL_AGE_SECONDS, "Scored minus newest trained event time",
                                            n.MODEL_AGE_BUCKETS).labels(**lb)

    def observe(self, stamps: Stamps) -> None:
        """A batch's stamps (an unknown value is not observed)."""
        if stamps.latency_ms is not None:
            self.latency.observe(max(stamps.latency_ms, 0) / 1000)
        if stamps.model_age_ms is not None:
            self.model_age.observe(max(stamps.model_age_ms, 0) / 1000)


class SinkMetrics:
    """The evaluator's metrics (the sink process, subtask 0)."""

    def __init__(self, cfg: JobConfig) -> None:
        self.endpoint = e = MetricsEndpoint(cfg, "sink")
        lb = e.labels
        self.auc_window = e.gauge(n.AUC_WINDOW, "Exact AUC over a window (NaN: undefined)", "window")
        self.windows = {w.name: self.auc_window.labels(**lb, window=w.name) for w in cfg.evaluation.windows}
        self.auc = e.gauge(n.AUC_CUMULATIVE, "Cumulative AUC, bounded memory").labels(**lb)
        self.bound = e.gauge(n.AUC_ERROR_BOUND, "Error bound of the cumulative AUC").labels(**lb)
        self.logloss = e.gauge(n.LOGLOSS, "Cumulative log loss").labels(**lb)
        self.mean_score = e.gauge(n.MEAN_SCORE, "Mean prediction").labels(**lb)
        self.ctr = e.gauge(n.OBSERVED_CTR, "Observed CTR").labels(**lb)
        self.calibration = e.gauge(n.CALIBRATION, "Mean prediction / observed CTR").labels(**lb)
        self.slice_auc = e.gauge(n.SLICE_AUC, "Cumulative AUC per slice", "slice")
        self.slice_logloss = e.gauge(n.SLICE_LOGLOSS, "Log loss per slice", "slice")
        self.slice_cal = e.gauge(n.SLICE_CALIBRATION, "Calibration per slice", "slice")
        self.events_in = e.counter(n.EVENTS_IN, "Raw events that reached the sink").labels(**lb)
        self.events_scored = e.counter(n.EVENTS_SCORED, "Events predicted (labelled or not)").labels(**lb)
        self.events_trained = e.counter(n.EVENTS_TRAINED, "Events predicted, then trained on").labels(**lb)
        self.rate = e.gauge(n.EVENTS_PER_SECOND, "Events per second between reports").labels(**lb)
        self.dead = e.counter(n.DEAD_LETTERS, "Dead letters by reason", "reason")
        from flinkdl.features.deadletter import REASONS

        for reason in REASONS:  # every known reason exists from the start (rate() sees the first one)
            self.dead.labels(**lb, reason=reason)
        self.drift = e.counter(n.SCHEMA_DRIFT_ROWS, "Accepted rows that carried an unknown column (ignored)",
                               "column")
        self.version = e.gauge(n.MODEL_VERSION, "Latest model version seen").labels(**lb)
        self.freshness = FreshnessMetrics(e)
        self._last: tuple[float, int] | None = None

    def start(self) -> int:
        return self.endpoint.start()

    def count(self, rows_in: int, scored: int, trained: int, dead_reasons: dict[str, int], version: int,
              drift: dict[str, int] | None = None) -> None:
        """Per batch: counters and version (``drift``: rows with an unknown column, by column)."""
        self.events_in.inc(rows_in)
        self.events_scored.inc(scored)
        self.events_trained.inc(trained)
        for reason, k in dead_reasons.items():
            self.dead.labels(**self.endpoint.labels, reason=reason).inc(k)
        for column, k in (drift or {}).items():
            self.drift.labels(**self.endpoint.labels, column=column[:100]).inc(k)
        self.version.set(version)

    def publish(self, summary: RunSummary) -> None:
        """At report cadence: the summary's quality figures and the event rate since the last one."""
        for name, w in summary.windows.items():
            self.windows[name].set(_num(w.auc))
        self.auc.set(_num(summary.auc_cumulative))
        self.bound.set(_num(summary.auc_error_bound))
        self.logloss.set(_num(summary.logloss))
        self.mean_score.set(_num(summary.mean_score))
        self.ctr.set(_num(summary.ctr))
        self.calibration.set(_num(summary.calibration))
        for value, m in summary.slices.items():
            lb = dict(self.endpoint.labels, slice=value)
            self.slice_auc.labels(**lb).set(_num(m.auc))
            self.slice_logloss.labels(**lb).set(_num(m.logloss))
            self.slice_cal.labels(**lb).set(_num(m.calibration))
        t, events_in = summary.t, summary.events_in
        if self._last is not None and t > self._last[0]:
            self.rate.set((events_in - self._last[1]) / (t - self._last[0]))
        self._last = (t, events_in)

    def stop(self) -> None:
        self.endpoint.stop()


class WorkerMetrics:
    """A TF worker's step latency, events and model version (and its PS client's, ``with_ps``)."""

    def __init__(self, cfg: JobConfig, subtask: int, with_ps: bool = False) -> None:
        port = cfg.metrics.port + 1 + subtask if cfg.metrics.port else 0
        self.endpoint = e = MetricsEndpoint(cfg, "worker", subtask, port)
        self.batch_seconds = e.histogram(n.WORKER_BATCH_SECONDS, "predict_then_train step time").labels(
            **e.labels)
        self.events = e.counter(n.WORKER_EVENTS, "Events trained by this worker").labels(**e.labels)
        self.version = e.gauge(n.WORKER_MODEL_VERSION, "Model version of this worker").labels(**e.labels)
        self.ps = PSMetrics(e) if with_ps else None

    def step(self, seconds: float, events: int, version: int) -> None:
        self.batch_seconds.observe(seconds)
        self.events.inc(events)
        self.version.set(version)


class ServingMetrics:
    """A serving subtask's loaded PS version, commit → refresh lag, requests and batch time."""

    def __init__(self, cfg: JobConfig, subtask: int) -> None:
        port = cfg.metrics.port + 1 + subtask if cfg.metrics.port else 0
        self.endpoint = e = MetricsEndpoint(cfg, "serving", subtask, port)
        lb = e.labels
        self.version = e.gauge(n.SERVING_MODEL_VERSION, "PS version this subtask scores with").labels(**lb)
        self.lag = e.histogram(n.SERVING_REFRESH_LAG_SECONDS, "PS commit to loaded by this subtask",
                               n.REFRESH_LAG_BUCKETS).labels(**lb)
        self.events = e.counter(n.SERVING_EVENTS, "Requests scored").labels(**lb)
        self.batch_seconds = e.histogram(n.SERVING_BATCH_SECONDS, "Score and publish one batch").labels(**lb)
        self.freshness = FreshnessMetrics(e)

    def loaded(self, version: int, lag_s: float) -> None:
        self.version.set(version)
        self.lag.observe(max(lag_s, 0.0))

    def scored(self, events: int, seconds: float) -> None:
        self.events.inc(events)
        self.batch_seconds.observe(seconds)


class PSMetrics:
    """Parameter-server client metrics of one worker, registered on its endpoint."""

    def __init__(self, endpoint: MetricsEndpoint) -> None:
        lb = endpoint.labels
        self.pull_seconds = endpoint.histogram(n.PS_PULL_SECONDS, "PS pull of newly touched rows").labels(
            **lb)
        self.push_seconds = endpoint.histogram(n.PS_PUSH_SECONDS, "PS sync: push deltas, refresh").labels(
            **lb)
        self.lag = endpoint.gauge(n.PS_LAG_BATCHES, "Batches trained locally, not yet pushed").labels(**lb)
        self.syncs = endpoint.counter(n.PS_SYNCS, "Pushes to the parameter server").labels(**lb)
        self._synced_at = 0
        self.lag.set(0)

    def after_step(self, synced: bool, seconds: float, ps) -> None:
        """After ``PsSync.after_step``: ``synced`` is its result, ``ps.batches`` its batch count."""
        if synced:
            self.push_seconds.observe(seconds)
            self.syncs.inc()
            self._synced_at = ps.batches
        self.lag.set(ps.batches - self._synced_at)
