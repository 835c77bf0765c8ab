"""The serving job's model from the published directory (``serving.source: published``).

:class:`PublishedRefresher` follows what TF Serving would serve: the highest complete version
under ``publish.dir`` (so only versions that passed the gate, and a rollback takes effect at the
next poll), loading its SavedModel's ``score_features`` signature. It is a
:class:`flinkdl.ps.refresh.Refresher`, as the PS's :class:`~flinkdl.ps.refresh.ModelRefresher` is.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.ps.refresh import Loaded, Refresher
from flinkdl.publish import layout


class PublishedModel:
    """A published SavedModel scoring featurized events (``predict`` as :class:`ModelBase` has it)."""

    def __init__(self, path: str | Path) -> None:
        self.saved = tf.saved_model.load(str(path))
        self.signature = self.saved.signatures["score_features"]

    def predict(self, ids: np.ndarray | tf.Tensor, dense: np.ndarray | tf.Tensor) -> tf.Tensor:
        return self.signature(ids=tf.convert_to_tensor(ids, tf.int64),
                              dense=tf.convert_to_tensor(dense, tf.float32))["score"]


class PublishedRefresher(Refresher):
    """Keeps :attr:`model` at the served published version, polled at most every ``refresh_s``."""

    def __init__(self, base: str | Path, refresh_s: float = 1.0) -> None:
        super().__init__(refresh_s)
        self.base = Path(base)
        self.model: PublishedModel | None = None

    def refresh(self) -> Loaded | None:
        """Load the served version if it is not the loaded one (newer, or older after a rollback)."""
        self._next_poll = time.monotonic() + self.refresh_s
        v = layout.latest(self.base)
        if v is None or v == self.version:
            return None
        model = PublishedModel(self.base / str(v))
        manifest = layout.manifest(self.base, v)
        published = float(manifest.get("published_at") or time.time())
        ts = manifest.get("trained_event_ts")
        with self.lock:
            self.model = model
            self.loaded = Loaded(v, published, time.time(), None if ts is None else int(ts))
        return self.loaded

    def close(self) -> None:
        super().close()
        self.model = None
