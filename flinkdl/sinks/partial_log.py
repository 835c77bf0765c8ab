"""One parallel subtask's end of the data path: its own output files and its partial evaluation.

At ``job.parallelism > 1`` each subtask writes its predictions to its own part
(``predictions-<subtask>.csv``, :func:`~flinkdl.sinks.predictions.part_path`) and its dead letters
to ``dead_letter-<subtask>.jsonl``, and counts its batches into a
:class:`~flinkdl.evaluation.partial.PartialEvaluator`; :meth:`PartialLog.take` hands the counts
over as a :class:`~flinkdl.evaluation.partial.Partial` (with the run counters since the last take)
for the aggregator (:mod:`flinkdl.sinks.aggregate_log`). Plain Python, no Flink.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from flinkdl.config.schema import JobConfig
from flinkdl.evaluation.partial import Partial, PartialEvaluator
from flinkdl.exchange.eval_columns import read_eval_columns
from flinkdl.exchange.freshness import read_stamps
from flinkdl.exchange.schema import labelled
from flinkdl.sinks.deadletter import DeadLetterLog
from flinkdl.sinks.predictions import PredictionWriter, part_path


class PartialLog:
    """Writes one subtask's outputs and counts its evaluation until :meth:`take`."""

    def __init__(self, cfg: JobConfig, subtask: int) -> None:
        self.cfg, self.subtask = cfg, subtask
        run_dir = Path(cfg.job.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.dead_path = part_path(Path(cfg.sinks.dead_letter or run_dir / "dead_letter.jsonl"), subtask)
        self.evaluator = PartialEvaluator(cfg.evaluation)
        self._preds: PredictionWriter | None = None
        self._dead: DeadLetterLog
        self._open()
        self._clear()

    def _clear(self) -> None:
        self.events_in = self.events_scored = self.events_trained = self.dead_count = 0
        self.model_version = 0
        self.reasons: Counter[str] = Counter()
        self.drift: Counter[str] = Counter()
        self.first_t: float | None = None
        self.last_t = 0.0
        self.evaluation_s = 0.0

    @property
    def pending(self) -> bool:
        """A batch arrived since the last take."""
        return self.first_t is not None

    def update(self, rows_in: int, preds: pa.RecordBatch, dead_letters: bytes, meta: bytes | None = None) -> None:
        """One batch: ``rows_in`` raw events, their predictions, dead letters, evaluation columns."""
        now = time.time()
        self.first_t = now if self.first_t is None else self.first_t
        self.last_t = now
        self.events_in += rows_in
        if preds.num_rows:
            labels = preds.column("label").to_numpy(zero_copy_only=False)
            scores = preds.column("score").to_numpy()
            ts, slices = read_eval_columns(meta, preds.num_rows)
            mask = labelled(labels)
            t_eval = time.perf_counter()
            if mask.any():
                self.evaluator.update(labels[mask], scores[mask], ts[mask] if ts is not None else None,
                                      slices.filter(pa.array(mask)) if slices is not None else None)
            self.evaluation_s += time.perf_counter() - t_eval
            self.events_scored += preds.num_rows
            self.events_trained += int(np.count_nonzero(mask))
            self.model_version = max(self.model_version, int(preds.column("model_version")[-1].as_py()))
            if self._preds is not None:
                self._preds.write(preds, read_stamps(meta).model_age_ms)
        before = self._dead.count
        reasons, drift = self._dead.add(dead_letters)
        self.dead_count += self._dead.count - before
        self.reasons.update(reasons)
        self.drift.update(drift)

    def take(self) -> Partial:
        """The counts since the last take; the output files are flushed (their sizes include it)."""
        if self._preds is not None:
            self._preds.flush()
        counters = {"events_in": self.events_in, "events_scored": self.events_scored,
                    "events_trained": self.events_trained, "dead_letter": self.dead_count,
                    "dead_letter_by_reason": dict(self.reasons), "schema_drift": dict(self.drift),
                    "model_version": self.model_version, "first_t": self.first_t, "last_t": self.last_t,
                    "evaluation_s": self.evaluation_s}
        part = self.evaluator.take(self.subtask, counters)
        self._clear()
        return part

    def files(self) -> dict[str, int]:
        """Each output file and its size now (the exactly-once anchor of this subtask)."""
        if self._preds is not None:
            self._preds.flush()
        paths = [w.path for w in (self._preds, self._dead.writer) if w is not None]
        return {str(p): p.stat().st_size if p.exists() else 0 for p in paths}

    def cut(self, files: dict[str, int]) -> None:
        """Return to an anchor: files cut back to ``files``, nothing counted since the last take."""
        self.close()
        for name, size in files.items():
            with open(name, "a+b") as f:
                f.truncate(size)
        self._open()
        self.evaluator.take(self.subtask)
        self._clear()

    def _open(self) -> None:
        sink = self.cfg.sinks.predictions
        self._preds = PredictionWriter(sink, self.subtask) if sink else None
        self._dead = DeadLetterLog(self.dead_path)

    def close(self) -> None:
        if self._preds is not None:
            self._preds.close()
        self._dead.close()
