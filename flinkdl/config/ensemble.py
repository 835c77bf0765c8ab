"""Config of ``model.name: ensemble``: several variants trained side by side, the best (or a mixture) served."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flinkdl.config.base import Strict


class VariantConfig(Strict):
    """One variant: the ensemble's model section with ``model`` merged over it, learning rates × ``lr_scale``."""

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="its name in metrics and its "
                           "parameter-server table prefix (<id>.); default: <model name>_x<lr_scale>")
    lr_scale: float = Field(1.0, gt=0, description="multiplies optimizer and dense_optimizer learning rates")
    model: dict[str, Any] = Field(default_factory=dict, description="overrides of the model section "
                                  "(nested keys, e.g. {name: fm, embedding_dim: 8})")


def _default_variants() -> list[VariantConfig]:
    return [VariantConfig(lr_scale=1.0), VariantConfig(lr_scale=0.5), VariantConfig(lr_scale=2.0)]


class EnsembleConfig(Strict):
    """Variants of ``base`` scored and trained on the same batches, each prequentially.

    ``serve``: ``mixture`` serves ``Σ_k w_k p_k`` with ``w ∝ exp(−eta · L_k)`` (exponential
    weights / Hedge), ``best`` the variant with the least ``L_k``, ``first`` always the first
    variant (the others are shadow models, trained and reported, never served). ``L_k`` is the
    variant's progressive log loss summed over past events with a decay of ``half_life`` events,
    so the choice follows drift.
    """

    base: str = Field("deepfm", description="the variants' model unless a variant names its own")
    variants: list[VariantConfig] = Field(default_factory=_default_variants, min_length=1)
    serve: Literal["mixture", "best", "first"] = "mixture"
    eta: float = Field(1.0, gt=0, description="mixture: inverse temperature on the decayed log-loss sums")
    half_life: float = Field(20_000.0, gt=0, description="events after which a past event's loss counts half")
    window_events: int = Field(20_000, ge=100, description="per-variant window AUC / log loss (metrics, summary)")

    @model_validator(mode="after")
    def _base_is_a_model(self) -> EnsembleConfig:
        if self.base == "ensemble":
            raise ValueError("model.ensemble.base: an ensemble of ensembles is not supported")
        return self
