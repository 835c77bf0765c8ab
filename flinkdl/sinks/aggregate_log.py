"""The run's log at ``job.parallelism > 1``: the partials of every subtask merged into one summary.

:class:`AggregateLog` receives :class:`~flinkdl.evaluation.partial.Partial` counts (a bounded size
per report, whatever the event rate), adds them up and writes the same
:class:`~flinkdl.evaluation.summary.RunSummary` lines to ``RUN_DIR/metrics.jsonl`` (and
Prometheus) as :class:`~flinkdl.sinks.run_log.RunLog` does at parallelism 1; ``auc`` is the
binned cumulative AUC (``auc_exact`` false, within ``auc_error_bound``). Plain Python, no Flink.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flinkdl.config.schema import JobConfig
from flinkdl.evaluation.partial import MergedEvaluator, Partial
from flinkdl.evaluation.summary import RunSummary
from flinkdl.sinks.run_log import METRICS_LOG
from flinkdl.sinks.snapshots import read_snapshot, write_snapshot

if TYPE_CHECKING:
    from flinkdl.telemetry.exporter import SinkMetrics

#: What :meth:`AggregateLog.save_state` keeps.
_STATE = ("merged", "events_in", "events_scored", "events_trained", "dead_letter", "reasons", "drift",
          "model_version", "first_t", "last_t", "evaluation_s", "merge_s")


class AggregateLog:
    """Merges partials; reports every ``job.report_every_s`` and once more, final, at ``max_events``."""

    def __init__(self, cfg: JobConfig, max_events: int | None = None) -> None:
        self.cfg, self.max_events = cfg, max_events
        self.run_dir = Path(cfg.job.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.merged = MergedEvaluator(cfg.evaluation, cfg.job.parallelism)
        self.events_in = self.events_scored = self.events_trained = self.dead_letter = self.model_version = 0
        self.reasons: Counter[str] = Counter()
        self.drift: Counter[str] = Counter()
        self.first_t: float | None = None
        self.last_t = 0.0
        self.last_report = time.time()
        self._unreported = False
        self.evaluation_s = 0.0  # the subtasks' time in their partial metrics
        self.merge_s = 0.0  # this process's time merging partials and computing summaries
        self.done = False
        self.metrics: SinkMetrics | None = None
        if cfg.metrics.enabled:
            from flinkdl.telemetry.exporter import SinkMetrics

            self.metrics = SinkMetrics(cfg)
            self.metrics.start()
        self._log = open(self.run_dir / METRICS_LOG, "a", buffering=1)  # noqa: SIM115 - lives with the run

    def add(self, part: Partial) -> None:
        """One subtask's partial."""
        if self.done:
            return
        t0 = time.perf_counter()
        self.merged.merge(part)
        c: dict[str, Any] = part.counters
        self.events_in += c.get("events_in", 0)
        self.events_scored += c.get("events_scored", 0)
        self.events_trained += c.get("events_trained", 0)
        self.dead_letter += c.get("dead_letter", 0)
        self.reasons.update(c.get("dead_letter_by_reason", {}))
        self.drift.update(c.get("schema_drift", {}))
        self.model_version = max(self.model_version, c.get("model_version", 0))
        if c.get("first_t") is not None:  # the subtasks' wall clocks: first to last batch of any
            self.first_t = c["first_t"] if self.first_t is None else min(self.first_t, c["first_t"])
            self.last_t = max(self.last_t, c["last_t"])
        self._unreported = True
        self.evaluation_s += c.get("evaluation_s", 0.0)
        self.merge_s += time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.count(c.get("events_in", 0), c.get("events_scored", 0), c.get("events_trained", 0),
                               c.get("dead_letter_by_reason", {}), self.model_version, c.get("schema_drift", {}))
        if self.max_events is not None and self.events_in >= self.max_events:
            self.finish()
        elif time.time() - self.last_report >= self.cfg.job.report_every_s:
            self._report(final=False)

    def flush(self) -> None:
        """Report now if a partial arrived since the last line."""
        if not self.done and self._unreported:
            self._report(final=False)

    def summary(self, final: bool) -> RunSummary:
        t0 = time.perf_counter()
        ev = self.merged.get()
        self.merge_s += time.perf_counter() - t0
        total, stream_s = ev.total, (self.last_t - self.first_t) if self.first_t is not None else 0.0
        return RunSummary(
            t=time.time(), final=final, events_in=self.events_in, events_scored=self.events_scored,
            events_trained=self.events_trained, dead_letter=self.dead_letter,
            dead_letter_by_reason=dict(self.reasons), schema_drift=dict(self.drift),
            auc=total.auc, auc_exact=False, logloss=total.logloss, model=self.cfg.model.name,
            model_version=self.model_version, stream_s=stream_s,
            rows_per_s=self.events_in / stream_s if stream_s > 0 else None,
            auc_cumulative=total.auc, auc_error_bound=total.auc_error_bound, mean_score=total.mean_score,
            ctr=total.ctr, calibration=total.calibration, windows=ev.windows, slices=ev.slices,
            evaluation_s=self.evaluation_s + self.merge_s)

    def _report(self, final: bool) -> None:
        self.last_report, self._unreported = time.time(), False
        summary = self.summary(final)
        if self.metrics is not None:
            self.metrics.publish(summary)
        self._log.write(json.dumps(summary.as_dict()) + "\n")

    def save_state(self, keep: int = 20) -> Path:
        """Write the merged counts to a new file in ``RUN_DIR/state`` (the aggregator's exactly-once
        anchor; its name carries the content's digest); keeps the newest ``keep``."""
        return write_snapshot(self.run_dir / "state", "aggregate", {k: getattr(self, k) for k in _STATE}, keep)

    def load_state(self, path: str | Path) -> None:
        """Return to a :meth:`save_state` file (refused if it no longer matches its digest)."""
        for k, v in read_snapshot(path, "aggregate").items():
            setattr(self, k, v)

    def finish(self) -> None:
        """Write the final summary line (idempotent)."""
        if self.done:
            return
        self.done = True
        self._report(final=True)
        self._log.close()
        if self.metrics is not None:
            self.metrics.stop()
