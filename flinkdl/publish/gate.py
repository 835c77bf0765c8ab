"""The quality gate: a version is published only if the model's recent scores are good enough.

:class:`RecentWindow` keeps the last ``size`` labelled ``(label, score)`` pairs the worker scored
(each score made before the model learnt its event, so they measure the model on unseen data);
:class:`QualityGate` decides on its :class:`WindowMetrics`.

>>> import numpy as np
>>> from flinkdl.config.publish import GateConfig
>>> w = RecentWindow(4)
>>> w.update(np.array([1, 0, 1, 0], np.float32), np.array([0.9, 0.2, 0.8, 0.1], np.float32))
>>> m = w.metrics(); m.auc, m.calibration
(1.0, 1.0)
>>> gate = QualityGate(GateConfig(window_events=100, min_events=4, min_auc=0.7))
>>> gate.check(m, baseline_auc=None).passed
True
>>> gate.check(WindowMetrics(4, 0.6, 0.5, 0.5, 0), baseline_auc=None).reasons
['auc 0.6000 < min_auc 0.7']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from flinkdl.config.publish import GateConfig
from flinkdl.evaluation.metrics import auc_from_arrays


@dataclass(frozen=True)
class WindowMetrics:
    """The window's numbers: labelled events, exact AUC (None: one class), mean score and label."""

    events: int
    auc: float | None
    mean_score: float
    observed_rate: float
    non_finite: int = 0  #: scores that were NaN or infinite (not in the other numbers)

    @property
    def calibration(self) -> float | None:
        """Mean score / observed rate (None without a positive)."""
        return self.mean_score / self.observed_rate if self.observed_rate > 0 else None

    def as_dict(self) -> dict:
        return {**asdict(self), "calibration": self.calibration}


class RecentWindow:
    """Ring buffer of the last ``size`` labelled events' labels and scores."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._label = np.zeros(size, np.float32)
        self._score = np.zeros(size, np.float32)
        self._head = self._count = 0

    def update(self, labels: np.ndarray, scores: np.ndarray) -> None:
        """Add a batch; rows whose label is NaN (unlabelled) are skipped."""
        keep = ~np.isnan(labels)
        y, s = labels[keep][-self.size:], scores[keep][-self.size:]
        idx = (self._head + np.arange(len(y))) % self.size
        self._label[idx], self._score[idx] = y, s
        self._head = (self._head + len(y)) % self.size
        self._count = min(self.size, self._count + len(y))

    def metrics(self) -> WindowMetrics:
        y, s = self._label[:self._count], self._score[:self._count]
        finite = np.isfinite(s)
        y, s = y[finite], s[finite]
        auc = auc_from_arrays(y, s) if len(y) else None
        return WindowMetrics(int(self._count), auc, float(s.mean()) if len(s) else math.nan,
                             float(y.mean()) if len(y) else 0.0, int((~finite).sum()))


@dataclass(frozen=True)
class Decision:
    """A gate decision: passed, or the reasons it was refused; with the numbers it was made on."""

    metrics: WindowMetrics
    baseline_auc: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons


class QualityGate:
    """Checks window AUC ≥ ``min_auc``, AUC drop against the last published version ≤
    ``max_auc_drop``, calibration in ``[min_calibration, max_calibration]`` and no non-finite score."""

    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg

    def check(self, m: WindowMetrics, baseline_auc: float | None) -> Decision:
        c, why = self.cfg, []
        if m.non_finite:
            why.append(f"{m.non_finite} non-finite scores")
        if m.events < c.min_events:
            why.append(f"{m.events} labelled events < min_events {c.min_events}")
        if m.auc is None:
            why.append("auc undefined (one class)")
        else:
            if m.auc < c.min_auc:
                why.append(f"auc {m.auc:.4f} < min_auc {c.min_auc}")
            if c.max_auc_drop is not None and baseline_auc is not None and m.auc < baseline_auc - c.max_auc_drop:
                why.append(f"auc {m.auc:.4f} < last published {baseline_auc:.4f} - max_auc_drop {c.max_auc_drop}")
        cal = m.calibration
        if cal is None:
            why.append("calibration undefined (no positive)")
        elif not c.min_calibration <= cal <= c.max_calibration:
            why.append(f"calibration {cal:.3f} outside [{c.min_calibration}, {c.max_calibration}]")
        return Decision(m, baseline_auc, why)
