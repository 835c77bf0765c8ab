"""Parameter-server sync of ``model.name: dynamic`` (collisionless ids), at parallelism 1.

The server holds the model's tables by row (``capacity`` + one fallback row per field, so its memory
is bounded like the worker's) and, in the table ``id_owner``, the real id each row holds: together
they are the rows keyed by id. A restarted worker loads both and rebuilds its id → row map from
``id_owner`` (:meth:`DynamicIdModel.restore_ids`). An eviction changes the row's ``id_owner`` entry
(to the new id, or free) and resets its values; both go to the server with the next push, as
any touched row does: the server forgets the evicted id incrementally.

The rows a step touches are known only once the model has mapped the batch's ids, so they are
recorded after the step; a single writer reads its rows' values at push time, so this is the same
as recording them before. Delta pushes (several writers) would need the values before the step:
refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flinkdl.config.schema import PsConfig
from flinkdl.models.base import ModelBase
from flinkdl.models.dynamic import DynamicIdModel
from flinkdl.ps.errors import PsError
from flinkdl.worker.hooks.base import Batch, Predictions
from flinkdl.worker.hooks.ps import PsHook
from flinkdl.worker.ps_sync import PsSync

if TYPE_CHECKING:
    from flinkdl.telemetry.exporter import PSMetrics


class DynamicPsHook(PsHook):
    """:class:`PsHook` for a :class:`DynamicIdModel`: rows by position plus each row's id."""

    def __init__(self, sync: PsSync, model: DynamicIdModel, report: str | None = None,
                 metrics: PSMetrics | None = None) -> None:
        super().__init__(sync, report, metrics)
        self.model = model

    @classmethod
    def from_config(cls, cfg: PsConfig, model: ModelBase, buckets: int, *, exactly_once: bool,
                    parallelism: int, report: str | None = None, metrics: PSMetrics | None = None,
                    writer: str | None = None) -> DynamicPsHook:
        """Load ``model`` and its id → row map from the server (``buckets`` is not used: the
        model's rows are ``capacity`` + one per field)."""
        if not isinstance(model, DynamicIdModel):
            raise PsError(f"DynamicPsHook needs model.name: dynamic, not {type(model).__name__}")
        if parallelism != 1 or cfg.single_writer is False:
            raise PsError("model.name: dynamic with ps.enabled runs at parallelism 1 as the single writer")
        sync = PsSync(model, cfg, model.rows_total, commit_every_push=exactly_once, single_writer=True,
                      writer=writer)
        model.restore_ids()
        return cls(sync, model, report, metrics)

    def before_step(self, batch: Batch) -> None:
        """Nothing yet: the rows are known after the step."""

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        self.sync.before_step(self.model.touched)
        super().after_step(batch, predictions)
