"""Warm start: ``flinkdl ps import DIR`` loads a model exported or trained offline into the PS.

``DIR`` is a SavedModel of the job's model class as :class:`flinkdl.publish.scorer.Scorer` writes
it (a published version, ``flinkdl ps export``, or an offline training script that saves a
``Scorer``). Its variables are checked against the job's model (names' order, shapes), written
into a model of the job's class, and pushed to the server through the worker's own
:class:`flinkdl.worker.ps_sync.PsSync` (as a single writer): every table row that differs from
the model's deterministic initial value, and every dense variable; then a version is committed.
A job started on that server loads it like any other state and continues from it. An export
holds no optimizer state: the optimizer slots start fresh (e.g. Adagrad's accumulators).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.config.features import FeatureConfig
from flinkdl.config.model import ModelConfig, PsConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model
from flinkdl.ps.errors import PsError


def load_export(model: ModelBase, path: str | Path) -> None:
    """Assign the variables of the SavedModel at ``path`` to ``model``'s (same class and shapes)."""
    saved = getattr(tf.saved_model.load(str(path)), "model_variables", None)
    ours = model.variables()
    if saved is None:
        raise PsError(f"{path} is not a flinkdl export (no model_variables)")
    if len(saved) != len(ours):
        raise PsError(f"{path} holds {len(saved)} variables, model {model.name!r} has {len(ours)}")
    for (name, var), value in zip(ours.items(), saved, strict=True):
        if tuple(value.shape) != tuple(var.shape):
            raise PsError(f"{path}: variable {name!r} has shape {tuple(value.shape)}, the job's model "
                          f"{tuple(var.shape)} (another model class or feature config?)")
        var.assign(value)


def import_model(path: str | Path, features: FeatureConfig, model_cfg: ModelConfig, ps: PsConfig,
                 force: bool = False) -> dict:
    """Push the model at ``path`` into the server at ``ps.address`` and commit; returns the commit's
    summary plus ``rows`` (table rows pushed). Refuses a server that has committed versions unless ``force``."""
    from flinkdl.ps.client import PsClient
    from flinkdl.worker.ps_sync import PsSync

    with PsClient.from_config(ps) as client:
        have = client.versions()
    if have and not force:
        raise PsError(f"{ps.address} already has committed versions ({len(have)}); --force imports over them")
    layout = FeatureLayout.from_config(features)
    model = build_model(layout, model_cfg)
    initial = {n: v.numpy() for n, v in model.variables().items() if n in model.sparse_names()}
    sync = PsSync(model, ps, layout.buckets, single_writer=True)  # creates the tables, loads the server's state
    load_export(model, path)
    variables = model.variables()
    changed = np.zeros(layout.buckets, bool)
    for name, start in initial.items():
        changed |= np.any(variables[name].numpy() != start, axis=1)
    ids = np.flatnonzero(changed).astype(np.int64)
    sync.before_step(ids)
    out = sync.close(commit=True)
    if out is None:
        raise PsError(f"{ps.address} has no checkpoint directory: the import cannot be committed")
    return {**out, "rows": len(ids)}
