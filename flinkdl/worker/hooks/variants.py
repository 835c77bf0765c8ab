"""Per-variant quality of an ensemble (``model.name: ensemble``) as a step hook.

After each step it feeds every variant's pre-step scores of the labelled rows to that variant's
progressive metrics (bounded cumulative AUC, log loss) and to a window of its last
``ensemble.window_events`` events. Every ``every_s`` seconds and at the end it publishes them:
Prometheus gauges (when the worker exports metrics) and ``RUN_DIR/variants-<subtask>.json``, which
``flinkdl run`` adds to the summary as ``variants``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.maths import log_losses
from flinkdl.evaluation.metrics import LogLoss, auc_from_arrays
from flinkdl.telemetry import names as n
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook

if TYPE_CHECKING:
    from flinkdl.models.ensemble import Ensemble
    from flinkdl.telemetry.exporter import MetricsEndpoint

REPORT = "variants-{subtask}.json"


class _Window:
    """The last ``size`` (label, score) pairs of one variant."""

    def __init__(self, size: int) -> None:
        self.y, self.s = np.zeros(size, bool), np.zeros(size, np.float32)
        self.at = self.filled = 0

    def add(self, y: np.ndarray, s: np.ndarray) -> None:
        y, s = y[-len(self.y):], s[-len(self.y):]
        k = (self.at + np.arange(len(y))) % len(self.y)
        self.y[k], self.s[k] = y, s
        self.at = int((self.at + len(y)) % len(self.y))
        self.filled = min(len(self.y), self.filled + len(y))

    def get(self) -> tuple[float | None, float | None]:
        """(AUC, log loss) of the window; None while undefined."""
        if not self.filled:
            return None, None
        y, s = self.y[:self.filled], self.s[:self.filled]
        return auc_from_arrays(y, s), float(log_losses(y, s).mean())


class VariantsHook(StepHook):
    """Tracks and publishes every variant's progressive and window quality (see the module docstring)."""

    def __init__(self, model: Ensemble, run_dir: str | os.PathLike, subtask: int = 0,
                 endpoint: MetricsEndpoint | None = None, every_s: float = 2.0) -> None:
        self.model, self.every_s = model, every_s
        self.path = Path(run_dir) / REPORT.format(subtask=subtask)
        size = model.ens.window_events
        self.auc = {v: BinnedAUC(1 << 16) for v in model.members}
        self.logloss = {v: LogLoss() for v in model.members}
        self.window = {v: _Window(size) for v in model.members}
        self._gauges: dict[str, Any] | None = None
        if endpoint is not None:
            lb = endpoint.labels
            g = {name: endpoint.gauge(name, doc, "variant") for name, doc in (
                (n.VARIANT_AUC_WINDOW, "AUC of the variant's last window of events"),
                (n.VARIANT_LOGLOSS_WINDOW, "Log loss of the variant's last window of events"),
                (n.VARIANT_AUC_CUMULATIVE, "Progressive AUC of the variant (bounded)"),
                (n.VARIANT_WEIGHT, "The variant's serving weight"))}
            self._gauges = {f"{name}/{v}": gauge.labels(**lb, variant=v) for name, gauge in g.items()
                            for v in model.members}
        self._last = time.monotonic()

    def before_step(self, batch: Batch) -> None:
        pass

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        mask = batch.labelled
        if mask.any():
            y = np.asarray(batch.label)[mask] > 0.5
            for v, s in self.model.last_scores.items():
                self.auc[v].update(y, s[mask])
                self.logloss[v].update(y, s[mask])
                self.window[v].add(y, s[mask])
        if time.monotonic() - self._last >= self.every_s:
            self.publish()

    def report(self) -> list[dict[str, Any]]:
        """Per variant: id, model, learning rate, weight, recent (decayed) log loss, progressive and
        window AUC / log loss, events."""
        out = []
        for state in self.model.variant_state():
            v = state["id"]
            w_auc, w_ll = self.window[v].get()
            out.append({**state, "auc": self.auc[v].get(), "logloss": self.logloss[v].get(),
                        "window_auc": w_auc, "window_logloss": w_ll, "events": self.logloss[v].n_events})
        return out

    def publish(self, final: bool = False) -> list[dict[str, Any]]:
        rows = self.report()
        if self._gauges is not None:
            for r in rows:
                for name, key in ((n.VARIANT_AUC_WINDOW, "window_auc"), (n.VARIANT_LOGLOSS_WINDOW, "window_logloss"),
                                  (n.VARIANT_AUC_CUMULATIVE, "auc"), (n.VARIANT_WEIGHT, "weight")):
                    self._gauges[f"{name}/{r['id']}"].set(np.nan if r[key] is None else r[key])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"serve": self.model.ens.serve, "final": final, "variants": rows}))
        os.replace(tmp, self.path)
        self._last = time.monotonic()
        return rows

    def close(self) -> None:
        self.publish(final=True)


def read_reports(run_dir: str | os.PathLike, workers: int = 1, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The variants of every worker's report in ``run_dir`` (each with its ``subtask``), waiting up to
    ``timeout_s`` for ``workers`` final ones (a worker writes its last report after its stream ended,
    which can be after the job's last progress line); after that, whatever is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        reports = {int(p.stem.rsplit("-", 1)[1]): json.loads(p.read_text())
                   for p in sorted(Path(run_dir).glob(REPORT.format(subtask="*")))}
        if sum(r.get("final", False) for r in reports.values()) >= workers or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [{**row, "subtask": k} for k, r in sorted(reports.items()) for row in r["variants"]]
