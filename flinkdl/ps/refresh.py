"""A model that follows the parameter server's committed versions (the serving read path).

:func:`fill_model` writes a version's rows and dense variables into a model's variables (shared with
:func:`flinkdl.ps.export.load_version`, which reads them from the checkpoint files instead);
:class:`ModelRefresher` loads the latest committed version from a server with read-only calls
(``versions``, ``pull`` of a version, ``dense_get``) and loads a newer one at most every
``refresh_s``: polled between batches (:meth:`ModelRefresher.maybe_refresh`) or by a background
thread (:meth:`ModelRefresher.poll_in_background`), so a model refreshes while no request arrives.
Readers of the model hold :attr:`ModelRefresher.lock`, under which a version is loaded.

>>> # r = ModelRefresher(model, client, "", refresh_s=1.0); r.refresh(); r.version
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from flinkdl.models.base import ModelBase
from flinkdl.models.tensors import to_tensor
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError

log = logging.getLogger(__name__)


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
        var.scatter_update(tf.IndexedSlices(to_tensor(values[ok]), to_tensor(ids[ok])))
    for name, var in variables.items():
        value = dense.get(prefix + name)
        if name not in model.sparse_names() and value is not None:
            var.assign(value)


@dataclass(frozen=True)
class Loaded:
    """One refresh: the version, when it was committed and when it was loaded (epoch seconds), and
    the event time (epoch ms) of the newest event trained into it (None: not recorded)."""

    version: int
    committed_at: float
    loaded_at: float
    trained_event_ts: int | None = None

    @property
    def lag_s(self) -> float:
        """Commit → loaded here, in seconds."""
        return self.loaded_at - self.committed_at


class Predictor(Protocol):
    """What a refresher keeps fresh: anything that scores featurized events, as :class:`ModelBase` does."""

    def predict(self, ids: Any, dense: Any) -> tf.Tensor: ...


class Refresher(ABC):
    """Keeps :attr:`model` at the newest version of a source, polled between batches or in the
    background; subclasses implement :meth:`refresh`. Readers of the model hold :attr:`lock`."""

    model: Predictor | None

    def __init__(self, refresh_s: float = 1.0) -> None:
        self.refresh_s = refresh_s
        self.loaded: Loaded | None = None
        self.lock = threading.Lock()  #: held while a version is written into the model; hold it to read
        self._next_poll = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def version(self) -> int | None:
        return self.loaded.version if self.loaded else None

    @abstractmethod
    def refresh(self) -> Loaded | None:
        """Load the source's current version if it is not the loaded one; the new :class:`Loaded`,
        or None when nothing changed."""

    def maybe_refresh(self) -> Loaded | None:
        """:meth:`refresh` if ``refresh_s`` has passed since the last poll (call it between batches)."""
        return self.refresh() if time.monotonic() >= self._next_poll else None

    def poll_in_background(self, on_loaded: Callable[[Loaded], None]) -> None:
        """Poll every ``refresh_s`` in a daemon thread, calling ``on_loaded`` after each new version;
        a failed poll is logged and retried at the next one. Only that thread polls then."""
        def loop() -> None:
            failing = False
            while not self._stop.wait(self.refresh_s):
                try:
                    got = self.refresh()
                    failing = False
                except Exception as e:  # a source that is down must not stop serving the loaded model
                    if not failing:
                        log.warning("model poll failed (retrying every %.1f s): %s", self.refresh_s, e)
                    failing = True
                    continue
                if got is not None:
                    on_loaded(got)

        self._thread = threading.Thread(target=loop, name="model-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background poller (if any) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop polling and release the source."""
        self.stop()


class ModelRefresher(Refresher):
    """Keeps ``model`` at the server's latest committed version (read-only role is enough)."""

    def __init__(self, model: ModelBase, client: PsClient, prefix: str, refresh_s: float = 1.0) -> None:
        super().__init__(refresh_s)
        self.model: ModelBase = model
        self.client, self.prefix = client, prefix
        self._cut: dict | None = None  # the recorded cut loaded, if any

    def refresh(self) -> Loaded | None:
        """Load the latest committed version if it is newer than the loaded one; the new
        :class:`Loaded`, or None when nothing changed."""
        self._next_poll = time.monotonic() + self.refresh_s
        cuts = self.client.cuts()
        if cuts:  # exactly-once at parallelism > 1: the newest recorded cut of writer lanes
            return self._load_cut(cuts[-1])
        versions = self.client.versions()
        newest = max(versions, key=lambda v: v["version"]) if versions else None
        loaded = self.loaded
        if newest is None or (loaded is not None and newest["version"] <= loaded.version):
            if loaded is not None:  # the trainer annotates a version after committing it
                ts = next((v.get("trained_event_ts") for v in versions if v["version"] == loaded.version), None)
                if ts is not None and (loaded.trained_event_ts is None or ts > loaded.trained_event_ts):
                    self.loaded = replace(loaded, trained_event_ts=int(ts))
            return None
        v = int(newest["version"])
        rows = {self.prefix + n: self.client.pull_all(self.prefix + n, version=v)
                for n in self.model.sparse_names()}
        dense = self.client.dense_get(version=v)
        ts = newest.get("trained_event_ts")
        with self.lock:
            fill_model(self.model, self.prefix, rows, dense, v)
            self.loaded = Loaded(v, float(newest.get("created") or time.time()), time.time(),
                                 None if ts is None else int(ts))
        return self.loaded

    def _load_cut(self, cut: dict) -> Loaded | None:
        """Load recorded ``cut`` (``{"id", "cut": {writer: seq}}``) unless it is the loaded one."""
        if self.loaded is not None and self._cut == cut:
            return None
        version = {"cut": cut["cut"]}
        rows = {self.prefix + n: self.client.pull_all(self.prefix + n, version=version)
                for n in self.model.sparse_names()}
        dense = self.client.dense_get(version=version)
        with self.lock:
            fill_model(self.model, self.prefix, rows, dense, int(cut["id"]))
            self.loaded = Loaded(int(cut["id"]), time.time(), time.time(), None)
            self._cut = cut
        return self.loaded

    def close(self) -> None:
        super().close()
        self.client.close()
