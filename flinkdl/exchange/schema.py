"""The column layout of the Arrow batches that cross from Flink to the TF worker, and back.

Feature batch (Flink → worker), in this column order:

- ``event_id`` int64
- ``label`` float32: 0.0 or 1.0, or NaN for an event without a label (scored, not trained on;
  :func:`labelled` is the flag)
- ``id_0 .. id_{F-1}`` int64: hashed bucket of each single-valued categorical field, then of each
  cross, then ``max_len`` columns per multi-valued field (:attr:`FeatureLayout.bags`): its ids in
  order, padded with ``-1`` (:data:`PAD`). A bag is never empty: an event without ids has the
  field's missing id in its first column. (Fixed-width int columns rather than an Arrow list
  column: every model input stays a dense ``[B, n_ids]`` tensor, read as today; docs/DESIGN.md.)
- ``x_0 .. x_{D-1}`` float32: per numeric field its transformed value, then its missing indicator
  (``x_{2k}`` = value of numeric field k, ``x_{2k+1}`` = 1.0 if it was missing)

Prediction batch (worker → Flink): ``event_id`` int64, ``score`` float32 (made before the
model trained on the event), ``label`` float32 (null: the event had none), ``model_version`` int64
(:data:`PREDICTION_SCHEMA`; :data:`EMPTY_PREDICTIONS` is a packed batch of none).

>>> labelled(np.array([1.0, np.nan, 0.0], np.float32)).tolist()
[True, False, True]
>>> prediction_labels(np.array([1.0, np.nan], np.float32)).to_pylist()
[1.0, None]
>>> from flinkdl.config.schema import FeatureConfig
>>> s = feature_schema(FeatureConfig(categorical=["a", "b"], numeric=["n"], crosses=[["a", "b"]]))
>>> s.names
['event_id', 'label', 'id_0', 'id_1', 'id_2', 'x_0', 'x_1']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flinkdl.config.schema import FeatureConfig
from flinkdl.exchange.channel import pack

PREDICTION_SCHEMA = pa.schema(
    [
        ("event_id", pa.int64()),
        ("score", pa.float32()),
        ("label", pa.float32()),
        ("model_version", pa.int64()),
    ]
)


def labelled(label: np.ndarray) -> np.ndarray:
    """The "has a label" flag of a feature batch's ``label`` column: bool per row (NaN = none)."""
    return ~np.isnan(label)


def prediction_labels(label: np.ndarray) -> pa.Array:
    """A feature batch's labels as the prediction batch's ``label`` column (NaN → null)."""
    return pa.array(label, pa.float32(), from_pandas=True)


#: The id of an unused slot of a multi-valued field's columns (no table row).
PAD = -1


@dataclass(frozen=True)
class Bag:
    """The id columns of one multi-valued field: ``max_len`` of them, pooled by ``pooling`` (sum, mean)."""

    max_len: int
    pooling: str = "mean"


@dataclass(frozen=True)
class FeatureLayout:
    """Shapes a model needs: ``n_ids`` hashed id columns, ``n_dense`` float columns, ``buckets`` rows.

    The last ``sum(b.max_len for b in bags)`` id columns are the bags (multi-valued fields); a
    model sees :attr:`n_fields` fields: one per other id column, one per bag. ``weighted``: the
    feature batch ends with a ``weight`` column (per-row loss weights), only for a strategy that needs it.
    """

    n_ids: int
    n_dense: int
    buckets: int
    bags: tuple[Bag, ...] = ()
    weighted: bool = False

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> FeatureLayout:
        bags = tuple(Bag(c.multi.max_len, c.multi.pooling) for c in cfg.bags if c.multi is not None)
        return cls(n_ids=cfg.n_id_fields, n_dense=cfg.n_dense, buckets=cfg.buckets, bags=bags)

    @property
    def n_single(self) -> int:
        """Id columns that are one field each (single-valued fields and crosses), the first ones."""
        return self.n_ids - sum(b.max_len for b in self.bags)

    @property
    def n_fields(self) -> int:
        """Fields a model embeds: one per single id column and one per bag."""
        return self.n_single + len(self.bags)

    def schema(self) -> pa.Schema:
        fields = [pa.field("event_id", pa.int64()), pa.field("label", pa.float32())]
        fields += [pa.field(f"id_{i}", pa.int64()) for i in range(self.n_ids)]
        fields += [pa.field(f"x_{j}", pa.float32()) for j in range(self.n_dense)]
        if self.weighted:
            fields.append(pa.field("weight", pa.float32()))
        return pa.schema(fields)


def feature_schema(cfg: FeatureConfig) -> pa.Schema:
    """The feature batch schema of ``cfg`` (:meth:`FeatureLayout.schema`)."""
    return FeatureLayout.from_config(cfg).schema()


#: A packed prediction batch of no rows (a batch whose every event was a dead letter).
EMPTY_PREDICTIONS: bytes = pack(pa.record_batch([pa.array([], f.type) for f in PREDICTION_SCHEMA],
                                                schema=PREDICTION_SCHEMA))
