"""Config of ``model.target_stats``: each id's click rate so far, as extra inputs of the model."""

from __future__ import annotations

from pydantic import Field

from flinkdl.config.base import Strict


class TargetStatsConfig(Strict):
    """Per-id statistics counted prequentially (flinkdl/models/target_stats.py).

    For each single-valued id column a row gets its id's click rate over the steps before its own,
    smoothed towards the running global rate by ``prior`` pseudo-events, as log-odds against the
    global rate; with ``counts`` also ``prior / (shows + prior)`` (1 for a new id). They enter the model as
    dense inputs (the first-order dense weights, FM's dense field, DeepFM's MLP).
    """

    prior: float = Field(10.0, gt=0, description="pseudo-events at the global rate added to each id's counts")
    counts: bool = Field(True, description="also each id's prior / (shows + prior): how new it is")
