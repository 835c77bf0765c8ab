"""Writes a published version from a snapshot of the model's variables (SavedModel and/or ONNX)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.config.features import FeatureConfig
from flinkdl.config.model import ModelConfig, PsConfig
from flinkdl.config.publish import PublishConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model
from flinkdl.publish import layout
from flinkdl.publish.scorer import Scorer

ONNX_FILE = "model.onnx"
log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """A model version to publish: its variables (copies) and its manifest so far."""

    version: int  #: the published version's number (its directory)
    values: dict[str, np.ndarray] | None  #: None: read PS version ``version`` from the server instead
    manifest: dict = field(default_factory=dict)
    taken_at: float = field(default_factory=time.time)  #: just after the PS commit (or the step)


def snapshot(model: ModelBase, version: int, manifest: dict) -> Snapshot:
    """Copy ``model``'s variables now (the step's critical path: one memory copy of the tables)."""
    return Snapshot(version, {n: np.array(v.numpy(), copy=True) for n, v in model.variables().items()}, manifest)


class Publisher:
    """Holds one model of the job's class; fills it from a :class:`Snapshot` and writes the version."""

    def __init__(self, cfg: PublishConfig, features: FeatureConfig, model_cfg: ModelConfig,
                 ps: PsConfig | None = None) -> None:
        """``ps``: the job's server: a snapshot without values is read from it, and each manifest
        gets the version's ``trained_event_ts`` from it."""
        self.cfg, self.ps = cfg, ps
        self.model = build_model(FeatureLayout.from_config(features), model_cfg)
        self.scorer = Scorer(features, self.model)

    def write(self, snap: Snapshot) -> Path:
        """Publish ``snap`` atomically into ``dir/<version>/``, prune old versions; returns the directory."""
        if snap.values is None:
            self.fill_from_ps(snap.version)
        else:
            variables = self.model.variables()
            for name, value in snap.values.items():
                variables[name].assign(value)

        def write(tmp: Path) -> None:
            if "saved_model" in self.cfg.formats:
                tf.saved_model.save(self.scorer, str(tmp), signatures=self.scorer.signatures())
            if "onnx" in self.cfg.formats:
                from flinkdl.publish.onnx_export import export_onnx

                export_onnx(self.scorer, tmp / ONNX_FILE)

        # read after the export: the trainer annotates a version just after the step that committed it
        times = trained_event_times(self.ps, snap.version) if self.ps is not None else {}
        doc = {**snap.manifest, **times, "version": snap.version, "formats": list(self.cfg.formats),
               "published_at": time.time()}
        path = layout.write_version(self.cfg.dir, snap.version, write, doc)
        layout.prune(self.cfg.dir, self.cfg.keep)
        return path

    def fill_from_ps(self, version: int) -> None:
        """Load committed PS ``version`` into the model (whole tables over Flight, read role)."""
        from flinkdl.ps.client import PsClient
        from flinkdl.ps.refresh import fill_model

        if self.ps is None:
            raise ValueError("a snapshot without values needs the PS config")
        p = self.ps.table_prefix
        with PsClient.from_config(self.ps) as client:
            rows = {p + n: client.pull_all(p + n, version=version) for n in self.model.sparse_names()}
            fill_model(self.model, p, rows, client.dense_get(version=version), version)


def trained_event_times(ps: PsConfig, version: int) -> dict[str, int]:
    """``{"trained_event_ts": ms}``: the event time of the newest event trained into PS ``version``
    (from the server's version list), or ``{}`` when the server has no such record or is unreachable."""
    from flinkdl.ps.client import PsClient

    try:
        with PsClient.from_config(ps) as client:
            got = client.versions()
    except Exception as e:  # any failure to read it (server down, refused): the time is information only
        log.warning("no trained event time for PS version %s: %s", version, e)
        return {}
    ts = next((v.get("trained_event_ts") for v in got if int(v["version"]) == version), None)
    return {} if ts is None else {"trained_event_ts": int(ts)}


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
