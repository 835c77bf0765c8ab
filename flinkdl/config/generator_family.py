"""Config of the generator family: ``source.generator.family`` and the named members (``preset``).

The built-in stream is one member of a family of click streams (:mod:`flinkdl.sources.family`):
vocabulary sizes, number and strength of the hidden crosses, multi-valued fields, and the kind
and strength of the drift are parameters. The defaults are today's stream, event for event.
``source.generator.preset: family-N`` names a member: its seed, drift point and family
parameters (they replace the section's; without a preset, set them explicitly).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flinkdl.config.base import Strict


class FamilyConfig(Strict):
    """Parameters of a member of the generator family (defaults: the built-in stream)."""

    vocab_scale: float = Field(1.0, gt=0, le=3.0, description="every field's vocabulary × this (≥ 2 ids)")
    crosses: int = Field(3, ge=0, le=12, description="hidden low-rank crosses between id fields")
    cross_strength: float = Field(1.0, ge=0, description="the crosses' latent std × this")
    multi_valued: int = Field(0, ge=0, le=4, description="multi-valued fields M1..Mn: '|'-joined id bags")
    multi_max_len: int = Field(5, ge=1, le=20, description="a bag holds 1..this many ids")
    drift: Literal["abrupt", "gradual", "recurring", "none"] = Field(
        "abrupt", description="abrupt: at drift_at; gradual: the new concept takes over linearly over "
        "drift_width events; recurring: new and old concept alternate every drift_width events; none")
    drift_strength: float = Field(1.0, ge=0, le=2.0, description="fraction of ids re-drawn and CTR shift × this")
    drift_width: int = Field(100_000, ge=1, description="gradual: ramp length; recurring: period (events)")


#: Named members of the family: generator settings (seed, drift_at) and ``family`` parameters.
PRESETS: dict[str, dict[str, Any]] = {
    "family-0": {},  # the built-in stream
    "family-1": {"seed": 11, "family": {"vocab_scale": 0.3, "crosses": 5, "drift": "gradual",
                                        "drift_width": 200_000}},
    "family-2": {"seed": 12, "family": {"vocab_scale": 2.0, "crosses": 2, "cross_strength": 1.5,
                                        "multi_valued": 1, "drift": "recurring", "drift_width": 150_000,
                                        "drift_strength": 0.7}},
    "family-3": {"seed": 13, "drift_at": 300_000, "family": {"crosses": 6, "cross_strength": 0.7,
                                                             "multi_valued": 2, "drift_strength": 2.0}},
    "family-4": {"seed": 14, "family": {"crosses": 0, "drift": "none"}},
}


def apply_preset(data: Any) -> Any:
    """A generator section (raw mapping) with its ``preset`` applied: the preset's ``seed``,
    ``drift_at`` and ``family`` replace the section's (a member is the same stream whatever job file
    names it); the section's other keys (events, batch size, rates) stay."""
    if not isinstance(data, dict) or data.get("preset") is None:
        return data
    name = data["preset"]
    if name not in PRESETS:
        raise ValueError(f"preset: unknown {name!r}; known: {sorted(PRESETS)}")
    preset = PRESETS[name]
    return {**data, "seed": preset.get("seed", 7), "drift_at": preset.get("drift_at", 500_000),
            "family": FamilyConfig.model_validate(preset.get("family", {}))}
