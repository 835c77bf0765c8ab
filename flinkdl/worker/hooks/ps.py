"""Parameter-server sync as a step hook: a :class:`PsSync` around each step."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flinkdl.config.schema import PsConfig
from flinkdl.models.base import ModelBase
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook
from flinkdl.worker.ps_sync import PsSync

if TYPE_CHECKING:
    from flinkdl.telemetry.exporter import PSMetrics


class PsHook(StepHook):
    """Keeps the model in step with the parameter server; marks the predictions of a step that
    committed a version (before they go back, so they say which version holds their batch)."""

    def __init__(self, sync: PsSync, report: str | None = None, metrics: PSMetrics | None = None) -> None:
        """``report``: file the final push's summary goes to (see :meth:`PsSync.close`);
        ``metrics``: pull/push latency and lag, if exported."""
        self.sync, self.report, self.metrics = sync, report, metrics

    @classmethod
    def from_config(cls, cfg: PsConfig, model: ModelBase, buckets: int, *, exactly_once: bool,
                    parallelism: int, report: str | None = None, metrics: PSMetrics | None = None,
                    writer: str | None = None) -> PsHook:
        """Load ``model`` from the server. Exactly-once commits at every push; a job at parallelism 1
        is a single writer unless ``ps.single_writer`` says otherwise. ``writer``: the name this
        worker fences its writes with (earlier workers of that name are refused from then on).
        Exactly-once at parallelism > 1 commits the writer's lane (:mod:`flinkdl.ps.lanes`)."""
        single = cfg.single_writer if cfg.single_writer is not None else parallelism == 1
        sync = PsSync(model, cfg, buckets, commit_every_push=exactly_once, single_writer=single, writer=writer,
                      lanes=exactly_once and parallelism > 1)
        return cls(sync, report, metrics)

    def before_step(self, batch: Batch) -> None:
        t0 = time.perf_counter()
        self.sync.before_step(batch.ids.numpy())
        if self.metrics is not None:
            self.metrics.pull_seconds.observe(time.perf_counter() - t0)

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        t0, before = time.perf_counter(), self.sync.committed
        synced = self.sync.after_step()
        if self.metrics is not None:
            self.metrics.after_step(synced, time.perf_counter() - t0, self.sync)
        if self.sync.committed != before:
            predictions.ps_version = self.sync.committed

    def close(self) -> None:
        """Last push and a committed version; the report tells the runner."""
        self.sync.close(report=self.report)
