"""``publish:``: continuous, gated export of the model for serving (docs/PUBLISH.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from flinkdl.config.base import Strict

Format = Literal["saved_model", "onnx"]


class GateConfig(Strict):
    """The quality gate a version passes before it is published, on the publishing worker's recent
    prequential scores (each made before the model learnt its event)."""

    window_events: int = Field(20_000, ge=100, le=10_000_000, description="the last N labelled events scored")
    min_events: int = Field(1_000, ge=1, description="fewer labelled events in the window: refused")
    min_auc: float = Field(0.5, ge=0, le=1, description="window AUC below this: refused")
    max_auc_drop: float | None = Field(0.02, ge=0, le=1, description="window AUC below the last published "
                                       "version's by more than this: refused (null: no such check)")
    min_calibration: float = Field(0.5, gt=0, description="mean score / observed rate over the window")
    max_calibration: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> GateConfig:
        if self.min_calibration > self.max_calibration:
            raise ValueError(f"publish.gate: min_calibration {self.min_calibration} > max_calibration "
                             f"{self.max_calibration}")
        if self.min_events > self.window_events:
            raise ValueError(f"publish.gate: min_events {self.min_events} > window_events {self.window_events}")
        return self


class PublishConfig(Strict):
    """Each published version lands atomically in ``dir/<version>/`` (TF Serving's layout: a
    SavedModel, ``model.onnx``, ``manifest.json``); ``<version>`` is the PS version (the model
    version without a PS). Worker subtask 0 publishes, after a PS commit (or step) once
    ``every_versions`` versions or ``every_s`` seconds have passed since the last attempt."""

    enabled: bool = False
    dir: Path = Path("runs/published")
    every_versions: int | None = Field(1, ge=1, description="null: by time only")
    every_s: float | None = Field(None, gt=0, description="null: by versions only")
    formats: list[Format] = Field(default_factory=lambda: list[Format](["saved_model"]), min_length=1)
    keep: int = Field(10, ge=1, description="published versions kept; older ones are removed")
    gate: GateConfig = GateConfig()

    @model_validator(mode="after")
    def _some_trigger(self) -> PublishConfig:
        if self.every_versions is None and self.every_s is None:
            raise ValueError("publish: set every_versions or every_s")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"publish.formats: duplicates in {self.formats}")
        return self
