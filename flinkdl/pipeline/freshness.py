"""The trainer's side of model age: which event time its model has learnt up to.

:class:`TrainedWatermark` lives in the train operator, which sees each batch's event times (the
worker sees features only). For every batch it stamps ``scored_ms`` and ``model_ts`` (the newest
labelled event time trained *before* this batch: the model that scored it had learnt that far) on
the envelope (:mod:`flinkdl.exchange.freshness`), then moves the watermark past the batch's own
labelled events. With a parameter server it records the watermark on each version a step committed
(``annotate``), so the serving job knows how old a version's knowledge is; it starts from the
latest version's value, the model the worker loads.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
from pyarrow import flight

from flinkdl.config.schema import PsConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.eval_columns import read_eval_columns
from flinkdl.exchange.freshness import stamp
from flinkdl.exchange.schema import labelled
from flinkdl.ps.errors import PsError

log = logging.getLogger(__name__)


class TrainedWatermark:
    """Event time (epoch ms) of the newest labelled event trained on; see the module docstring."""

    def __init__(self, ps: PsConfig | None = None) -> None:
        """``ps``: the job's parameter server (enabled), to annotate committed versions on."""
        self.model_ts: int | None = None
        self._client = None
        if ps is not None and ps.enabled:
            from flinkdl.ps.client import PsClient

            self._client = PsClient.from_config(ps)
            versions = self._client.versions() if self._client.health()["checkpoint"] else []
            if versions:
                self.model_ts = max(versions, key=lambda v: v["version"]).get("trained_event_ts")

    def stamp(self, env: Envelope, preds: pa.RecordBatch, version: int | None = None) -> Envelope:
        """``env`` (carrying ``preds``) stamped with this batch's scoring time and model event time;
        then the watermark takes the batch in, and ``version`` (committed by its step) is annotated."""
        n = preds.num_rows
        scored_ms = int(time.time() * 1000)
        columns = env.eval_columns
        if self.model_ts is not None or columns:
            columns = stamp(columns, n, scored_ms=scored_ms, model_ts=self.model_ts)
        ts, _ = read_eval_columns(columns, n)
        if ts is not None and n:
            mask = labelled(preds.column("label").to_numpy(zero_copy_only=False))
            if mask.any():
                newest = int(np.max(ts[mask]))
                self.model_ts = newest if self.model_ts is None else max(self.model_ts, newest)
        if version is not None:
            self.annotate(version)
        return Envelope(env.seq, env.rows_in, env.payload, env.dead_letters, columns)

    def annotate(self, version: int | None = None) -> None:
        """Record the watermark on ``version`` (None: the latest committed), if there is a PS."""
        if self._client is None or self.model_ts is None:
            return
        try:
            if version is None:
                versions = self._client.versions()
                if not versions:
                    return
                version = max(int(v["version"]) for v in versions)
            self._client.annotate(version, self.model_ts)
        except (PsError, flight.FlightError) as e:  # information: never fails training (or a cancel's close)
            log.warning("could not annotate PS version %s: %s", version, e)

    def close(self) -> None:
        """Annotate the latest version (the worker's last commit) and disconnect."""
        if self._client is not None:
            self.annotate()
            self._client.close()
            self._client = None
