"""The values the evaluation reports: per stream or slice, per window, and a run's summary line.

Plain dataclasses, built once where they are computed; readers (the run log's JSON line,
the Prometheus exporter, ``flinkdl report``) only read them. Undefined values are ``None``.

>>> q = QualityStats.from_sums(0.75, 0.0, logloss_sum=1.2, score_sum=1.0, positives=1, events=4)
>>> q.mean_score, q.ctr, q.calibration, q.logloss
(0.25, 0.25, 1.0, 0.3)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QualityStats:
    """Cumulative quality of a stream or of one slice."""

    auc: float | None  # bounded-memory (binned)
    auc_error_bound: float | None  # |auc - exact| <= this
    logloss: float | None
    mean_score: float | None
    ctr: float | None  # observed: mean label
    calibration: float | None  # mean_score / ctr
    events: int

    @classmethod
    def from_sums(cls, auc: float | None, auc_error_bound: float | None, *, logloss_sum: float,
                  score_sum: float, positives: float, events: int) -> QualityStats:
        """The means of ``events`` events from their sums (all ``None`` without events)."""
        n = int(events)
        if not n:
            return cls(auc, auc_error_bound, None, None, None, None, 0)
        mean, ctr = score_sum / n, positives / n
        return cls(auc, auc_error_bound, logloss_sum / n, mean, ctr, mean / ctr if ctr else None, n)


@dataclass(frozen=True)
class WindowStats:
    """Exact AUC of one window and the events it covers."""

    auc: float | None
    events: int


@dataclass(frozen=True)
class Evaluation:
    """What :class:`~flinkdl.evaluation.evaluator.StreamEvaluator` reports at one time."""

    total: QualityStats
    windows: dict[str, WindowStats] = field(default_factory=dict)
    slices: dict[str, QualityStats] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """One line of ``RUN_DIR/metrics.jsonl`` (field order is the line's key order)."""

    t: float  # wall clock of the report
    final: bool
    events_in: int  # raw events that reached the sink
    events_scored: int  # predicted (labelled or not)
    events_trained: int  # predicted, then trained on (the labelled ones)
    dead_letter: int
    dead_letter_by_reason: dict[str, int]
    schema_drift: dict[str, int]  # accepted rows with an unknown column, by column
    auc: float | None  # exact progressive AUC if auc_exact, else the bounded one
    auc_exact: bool
    logloss: float | None
    model: str
    model_version: int
    stream_s: float  # first to last batch
    rows_per_s: float | None
    auc_cumulative: float | None  # bounded-memory, always
    auc_error_bound: float | None
    mean_score: float | None
    ctr: float | None
    calibration: float | None
    windows: dict[str, WindowStats]
    slices: dict[str, QualityStats]
    evaluation_s: float  # time spent in the metrics

    def as_dict(self) -> dict[str, Any]:
        """The JSON line's object (nested values as dicts)."""
        return dataclasses.asdict(self)
