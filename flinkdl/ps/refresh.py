"""A model that follows the parameter server's committed versions (the serving read path).

:func:`fill_model` writes a version's rows and dense variables into a model's variables (shared with
:func:`flinkdl.ps.export.load_version`, which reads them from the checkpoint files instead);
:class:`ModelRefresher` loads the latest committed version from a server with read-only calls
(``versions``, ``pull`` of a version, ``dense_get``) and, polled between batches, loads a newer one
at most every ``refresh_s``.

>>> # r = ModelRefresher(model, client, "", refresh_s=1.0); r.refresh(); r.version
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from flinkdl.models.base import ModelBase
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError


def fill_model(model: ModelBase, prefix: str, rows: Mapping[str, tuple[np.ndarray, np.ndarray]],
               dense: Mapping[str, np.ndarray], version: int) -> None:
    """Write ``rows`` (PS table name → ``(ids, rows)``, values then optimizer slots per row) and
    ``dense`` (PS name → value) of ``version`` into ``model``'s variables. Rows the version does not
    hold keep their values (the model's deterministic initial ones in a fresh model)."""
    variables = model.variables()
    for name in model.sparse_names():
        var = variables[name]
        if prefix + name not in rows:
            raise PsError(f"version {version} has no table {prefix + name!r} (has {sorted(rows)})")
        ids, values = rows[prefix + name]
        values = values[:, : var.shape[1]]
        ok = (ids >= 0) & (ids < var.shape[0])
        var.scatter_update(tf.IndexedSlices(tf.constant(values[ok]), tf.constant(ids[ok])))
    for name, var in variables.items():
        value = dense.get(prefix + name)
        if name not in model.sparse_names() and value is not None:
            var.assign(value)


@dataclass(frozen=True)
class Loaded:
    """One refresh: the version, when it was committed and when it was loaded (epoch seconds)."""

    version: int
    committed_at: float
    loaded_at: float

    @property
    def lag_s(self) -> float:
        """Commit → loaded here, in seconds."""
        return self.loaded_at - self.committed_at


class ModelRefresher:
    """Keeps ``model`` at the server's latest committed version (read-only role is enough)."""

    def __init__(self, model: ModelBase, client: PsClient, prefix: str, refresh_s: float = 1.0) -> None:
        self.model, self.client, self.prefix, self.refresh_s = model, client, prefix, refresh_s
        self.loaded: Loaded | None = None
        self._next_poll = 0.0

    @property
    def version(self) -> int | None:
        return self.loaded.version if self.loaded else None

    def latest(self) -> dict | None:
        """The newest committed version's entry of ``versions()`` (None: nothing committed yet)."""
        versions = self.client.versions()
        return max(versions, key=lambda v: v["version"]) if versions else None

    def refresh(self) -> Loaded | None:
        """Load the latest committed version if it is newer than the loaded one; the new
        :class:`Loaded`, or None when nothing changed."""
        self._next_poll = time.monotonic() + self.refresh_s
        newest = self.latest()
        if newest is None or (self.loaded is not None and newest["version"] <= self.loaded.version):
            return None
        v = int(newest["version"])
        rows = {self.prefix + n: self.client.pull_all(self.prefix + n, version=v)
                for n in self.model.sparse_names()}
        fill_model(self.model, self.prefix, rows, self.client.dense_get(version=v), v)
        self.loaded = Loaded(v, float(newest.get("created") or time.time()), time.time())
        return self.loaded

    def maybe_refresh(self) -> Loaded | None:
        """:meth:`refresh` if ``refresh_s`` has passed since the last poll (call it between batches)."""
        return self.refresh() if time.monotonic() >= self._next_poll else None
