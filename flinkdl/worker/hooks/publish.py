"""Continuous publishing as a step hook: gate, snapshot and (in a background thread) export.

After a step whose PS commit (without a PS: whose model version) is due (``publish.every_versions``
/ ``every_s``), the hook checks the quality gate on its recent prequential scores. A refused
version is counted, logged with its numbers and appended to ``refused.jsonl``; a passing one is
snapshotted (a copy of the model's variables, on the step's path; with other writers on the PS
the thread reads the committed version from the server instead) and handed to a background
thread that writes the SavedModel / ONNX export and renames it into ``publish.dir/<version>/``
(with a PS, its manifest gets the version's ``trained_event_ts`` from the server).

Trade-off of the thread: the step waits only for the copy, not for the export (seconds), but the
export competes for the worker's CPU while it runs; a snapshot that arrives while the thread is
still busy replaces the one waiting (only the newest waits), so a version can be skipped.
List the hook before the PS hook: its ``after_step`` then runs after the PS commit.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from flinkdl.config.features import FeatureConfig
from flinkdl.config.model import ModelConfig, PsConfig
from flinkdl.config.publish import PublishConfig
from flinkdl.models.base import ModelBase
from flinkdl.publish import layout
from flinkdl.publish.gate import Decision, QualityGate, RecentWindow
from flinkdl.publish.metrics import PublishMetrics
from flinkdl.publish.publisher import Publisher, Snapshot, dir_bytes, snapshot
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook

if TYPE_CHECKING:
    from flinkdl.telemetry.exporter import MetricsEndpoint


def _log(event: str, **fields: object) -> None:
    print(json.dumps({"publish": event, **fields}, sort_keys=True, default=str), file=sys.stderr, flush=True)


class PublishHook(StepHook):
    """Publishes gated versions of ``model`` into ``cfg.dir`` (see the module docstring)."""

    def __init__(self, cfg: PublishConfig, features: FeatureConfig, model_cfg: ModelConfig, model: ModelBase,
                 *, ps: PsConfig | None = None, from_ps: bool = False, metrics: PublishMetrics | None = None,
                 report: str | None = None) -> None:
        """``ps``: the job's enabled PS (versions are PS versions; each manifest gets the version's
        trained event time from it). ``from_ps``: export each version as committed on that server
        (read in the background thread), for a worker that is not the only writer; else from a
        snapshot of ``model``. ``report``: the file :meth:`close` writes when the last version is on
        disk (``flinkdl run`` waits for it)."""
        if from_ps and ps is None:
            raise ValueError("from_ps needs the PS config")
        self.cfg, self.model, self.with_ps, self.metrics, self.report = cfg, model, ps is not None, metrics, report
        self.from_ps = from_ps
        self.window = RecentWindow(cfg.gate.window_events)
        self.gate = QualityGate(cfg.gate)
        self.publisher = Publisher(cfg, features, model_cfg, ps)
        last = layout.latest(cfg.dir)
        self.baseline_auc: float | None = layout.manifest(cfg.dir, last)["metrics"]["auc"] if last else None
        self.last_version = last or 0
        self._last_try, self._last_try_t = self.last_version, time.monotonic()
        self._first_event: int | None = None
        self._last_event: int | None = None
        self.refused = self.published = self.skipped = 0
        self._pending: Snapshot | None = None
        self._busy = False
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, cfg: PublishConfig, features: FeatureConfig, model: ModelBase, *, ps: PsConfig | None,
                    single_writer: bool = True, endpoint: MetricsEndpoint | None = None,
                    report: str | None = None) -> PublishHook:
        """The hook for ``model`` (its own config is ``model.cfg``); ``ps``: the enabled PS, if any
        (``single_writer``: this worker is its only writer, so its model is the committed version);
        metrics on ``endpoint`` if given."""
        return cls(cfg, features, model.cfg, model, ps=ps, from_ps=ps is not None and not single_writer,
                   metrics=PublishMetrics(endpoint) if endpoint is not None else None, report=report)

    def before_step(self, batch: Batch) -> None:
        pass

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        self.window.update(np.asarray(batch.label), np.asarray(predictions.scores))
        ids = np.asarray(batch.event_id)
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            self._first_event = lo if self._first_event is None else min(self._first_event, lo)
            self._last_event = hi if self._last_event is None else max(self._last_event, hi)
        version = predictions.ps_version if self.with_ps else predictions.model_version
        if version is None or version <= self.last_version or not self._due(version):
            return
        self._last_try, self._last_try_t = version, time.monotonic()
        if layout.held(self.cfg.dir) is not None:
            return
        decision = self.gate.check(self.window.metrics(), self.baseline_auc)
        if self.metrics is not None:
            self.metrics.checked(decision)
        doc = self._manifest(version, predictions, decision)
        if not decision.passed:
            self.refused += 1
            layout.record_refusal(self.cfg.dir, {**doc, "reasons": decision.reasons, "refused_at": time.time()})
            _log("refused", version=version, reasons=decision.reasons, metrics=doc["metrics"])
            return
        self.baseline_auc, self.last_version = decision.metrics.auc, version
        _log("passed", version=version, auc=decision.metrics.auc, calibration=decision.metrics.calibration)
        snap = Snapshot(version, None, doc) if self.from_ps else snapshot(self.model, version, doc)
        with self._cv:
            if self._pending is not None:
                self.skipped += 1
            self._pending = snap
            self._cv.notify()

    def _due(self, version: int) -> bool:
        c = self.cfg
        by_versions = c.every_versions is not None and version - self._last_try >= c.every_versions
        by_time = c.every_s is not None and time.monotonic() - self._last_try_t >= c.every_s
        return by_versions or by_time

    def _manifest(self, version: int, predictions: Predictions, d: Decision) -> dict:
        return {"version": version, "model": self.model.name, "model_version": predictions.model_version,
                "ps_version": predictions.ps_version, "event_ids": [self._first_event, self._last_event],
                "metrics": d.metrics.as_dict(), "gate": {**self.cfg.gate.model_dump(), "baseline_auc": d.baseline_auc}}

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closing:
                    self._cv.wait()
                if self._pending is None:
                    return
                snap, self._pending, self._busy = self._pending, None, True
            try:
                path = self.publisher.write(snap)
                latency = time.time() - snap.taken_at
                self.published += 1
                if self.metrics is not None:
                    self.metrics.done(snap.version, latency)
                _log("published", version=snap.version, path=str(path), latency_s=round(latency, 3),
                     bytes=dir_bytes(path), auc=snap.manifest["metrics"]["auc"])
            except Exception as e:  # a failed export must not stop training; it is logged
                _log("failed", version=snap.version, error=f"{type(e).__name__}: {e}")
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the snapshot handed over last is written."""
        with self._cv:
            self._cv.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self) -> None:
        """Write what is waiting (the stream's end waits for that export), stop the thread, report."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()
        counts = {"published": self.published, "refused": self.refused, "skipped": self.skipped,
                  "last_version": layout.latest(self.cfg.dir)}
        _log("closed", **counts)
        if self.report:
            layout.write_final_report(self.report, counts)
