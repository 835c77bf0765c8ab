"""The end of the data path: progressive evaluation, prediction/dead-letter files, the run's log.

``RunLog`` is plain Python (no Flink), so it is unit-testable; the Flink operator
``EvaluateAndSink`` only feeds it. It appends a :class:`~flinkdl.evaluation.summary.RunSummary`
as a JSON line to ``RUN_DIR/metrics.jsonl`` every ``job.report_every_s`` seconds and a final one
with ``"final": true``; the runner tails that file to print progress and reads the last line as
the run summary. With ``metrics.enabled`` each summary is also published to Prometheus.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from flinkdl.config.schema import JobConfig
from flinkdl.evaluation.evaluator import StreamEvaluator
from flinkdl.evaluation.metrics import ProgressiveAUC
from flinkdl.evaluation.summary import Evaluation, RunSummary
from flinkdl.exchange.eval_columns import read_eval_columns
from flinkdl.exchange.freshness import read_stamps
from flinkdl.exchange.schema import labelled
from flinkdl.sinks.snapshots import read_snapshot, write_snapshot

if TYPE_CHECKING:
    from flinkdl.sinks.deadletter import DeadLetterLog
    from flinkdl.sinks.predictions import PredictionWriter
    from flinkdl.telemetry.exporter import SinkMetrics

METRICS_LOG = "metrics.jsonl"
#: What :meth:`RunLog.save_state` keeps (besides the output file sizes).
_STATE = ("auc", "evaluator", "evaluation_s", "events_in", "events_scored", "events_trained", "model_version",
          "first_t", "last_t")


class RunLog:
    """Evaluates and writes out the prediction batches of one run; see the module docstring."""

    def __init__(self, cfg: JobConfig, max_events: int | None = None) -> None:
        self.cfg = cfg
        self.max_events = max_events
        self.run_dir = Path(cfg.job.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        exact = cfg.evaluation.exact_progressive_auc
        if exact is None:  # an unbounded stream gets the bounded AUC: the exact one keeps each distinct score
            exact = max_events is not None
        self.auc = ProgressiveAUC() if exact else None  # else the summary's auc is the evaluator's bounded
        self.evaluator = StreamEvaluator(cfg.evaluation)
        self.evaluation_s = 0.0  # time spent in the metrics (update + get), for the benchmark
        self.metrics: SinkMetrics | None = None
        if cfg.metrics.enabled:
            from flinkdl.telemetry.exporter import SinkMetrics

            self.metrics = SinkMetrics(cfg)
            self.metrics.start()
        self.events_in = self.events_scored = self.events_trained = 0
        self.model_version = 0
        self.first_t: float | None = None
        self.last_t = self.last_report = time.time()
        self.done = False
        self._log = open(self.run_dir / METRICS_LOG, "a", buffering=1)  # noqa: SIM115 - lives with the run
        self._preds: PredictionWriter | None = None
        self._dead: DeadLetterLog
        self._open_outputs()

    def update(self, rows_in: int, preds: pa.RecordBatch, dead_letters: bytes,
               meta: bytes | None = None) -> None:
        """One batch: ``rows_in`` raw events, their predictions, dead letters (JSON lines), event meta."""
        if self.done:  # past --max-events: the run is over, later batches are not counted
            return
        now = time.time()
        if self.first_t is None:
            self.first_t = now
        self.last_t = now
        self.events_in += rows_in
        trained = 0
        if preds.num_rows:
            labels = preds.column("label").to_numpy(zero_copy_only=False)  # null (no label) → NaN
            scores = preds.column("score").to_numpy()
            ts, slices = read_eval_columns(meta, preds.num_rows)
            mask = labelled(labels)
            trained = int(mask.sum())
            if trained < preds.num_rows:  # label-based metrics see the labelled events only
                labels, scores = labels[mask], scores[mask]
                ts = ts[mask] if ts is not None else None
                slices = slices.filter(pa.array(mask)) if slices is not None else None
            t_eval = time.perf_counter()
            if trained:
                if self.auc is not None:
                    self.auc.update(labels, scores)
                self.evaluator.update(labels, scores, ts, slices)
            self.evaluation_s += time.perf_counter() - t_eval
            self.events_scored += preds.num_rows
            self.events_trained += trained
            self.model_version = max(self.model_version, int(preds.column("model_version")[-1].as_py()))
            stamps = read_stamps(meta)
            if self._preds is not None:
                self._preds.write(preds, stamps.model_age_ms)
            if self.metrics is not None:
                self.metrics.freshness.observe(stamps)
        reasons, drift = self._dead.add(dead_letters)
        if self.metrics is not None:
            self.metrics.count(rows_in, preds.num_rows, trained, reasons, self.model_version, drift)
        if self.max_events is not None and self.events_in >= self.max_events:
            self.finish()
        elif now - self.last_report >= self.cfg.job.report_every_s:
            self._report(final=False)

    def flush(self) -> None:
        """Report now if a batch arrived since the last line (the sink calls it when the stream
        pauses, so the log and the console never lag behind a stream that went quiet)."""
        if self.done or self.first_t is None or self.last_t <= self.last_report:
            return
        if self._preds is not None:
            self._preds.flush()
        self._report(final=False)

    def summary(self, final: bool, ev: Evaluation, auc: float | None, t: float) -> RunSummary:
        """The run so far as one value, from the evaluator's ``ev`` and the exact ``auc`` (if kept)."""
        stream_s = (self.last_t - self.first_t) if self.first_t is not None else 0.0
        total = ev.total
        return RunSummary(
            t=t, final=final, events_in=self.events_in, events_scored=self.events_scored,
            events_trained=self.events_trained,
            dead_letter=self._dead.count, dead_letter_by_reason=dict(self._dead.by_reason),
            schema_drift=dict(self._dead.drift),
            auc=auc if self.auc is not None else total.auc, auc_exact=self.auc is not None,
            logloss=total.logloss, model=self.cfg.model.name, model_version=self.model_version,
            stream_s=stream_s, rows_per_s=self.events_in / stream_s if stream_s > 0 else None,
            auc_cumulative=total.auc, auc_error_bound=total.auc_error_bound, mean_score=total.mean_score,
            ctr=total.ctr, calibration=total.calibration, windows=ev.windows, slices=ev.slices,
            evaluation_s=self.evaluation_s)

    def _report(self, final: bool) -> None:
        """Build the summary, publish it (Prometheus) and append it to the log."""
        self.last_report = time.time()
        t_eval = time.perf_counter()
        ev = self.evaluator.get()
        auc = self.auc.get() if self.auc is not None else None
        self.evaluation_s += time.perf_counter() - t_eval
        summary = self.summary(final, ev, auc, time.time())
        if self.metrics is not None:
            self.metrics.publish(summary)
        self._log.write(json.dumps(summary.as_dict()) + "\n")

    def save_state(self, keep: int = 20) -> Path:
        """Write what the run has counted so far, and how far its output files go, to a new file in
        ``RUN_DIR/state`` (the exactly-once anchor of the sink); keeps the newest ``keep`` files."""
        if self._preds is not None:  # (dead letters are flushed as they are written)
            self._preds.flush()
        state = {k: getattr(self, k) for k in _STATE}
        state["dead"] = (self._dead.by_reason, self._dead.drift, self._dead.writer.count)
        state["files"] = {str(p): p.stat().st_size if p.exists() else 0 for p in self._outputs()}
        return write_snapshot(self.run_dir / "state", "sink", state, keep)

    def load_state(self, path: str | Path) -> None:
        """Return to a :meth:`save_state` file: counters and metrics, output files cut back to it."""
        state = read_snapshot(path, "sink")
        self._close_outputs()
        for name, size in state.pop("files").items():
            with open(name, "a+b") as f:
                f.truncate(size)
        self._open_outputs()
        self._dead.by_reason, self._dead.drift, self._dead.writer.count = state.pop("dead")
        for k, v in state.items():
            setattr(self, k, v)

    def _outputs(self) -> list[Path]:
        return [w.path for w in (self._preds, self._dead.writer) if w is not None]

    def _open_outputs(self) -> None:
        from flinkdl.sinks.deadletter import DeadLetterLog
        from flinkdl.sinks.predictions import PredictionWriter

        sinks = self.cfg.sinks
        self._preds = PredictionWriter(sinks.predictions) if sinks.predictions else None
        self._dead = DeadLetterLog(sinks.dead_letter or self.run_dir / "dead_letter.jsonl")

    def _close_outputs(self) -> None:
        if self._preds is not None:
            self._preds.close()
        self._dead.close()

    def finish(self) -> None:
        """Flush every file and write the final summary line (idempotent)."""
        if self.done:
            return
        self.done = True
        self._close_outputs()
        self._report(final=True)
        self._log.close()
        if self.metrics is not None:
            self.metrics.stop()
