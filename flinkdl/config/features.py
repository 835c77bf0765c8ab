"""Config of the feature schema: ``features`` (label, categorical/numeric fields, crosses, hashing)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from flinkdl.config.base import Strict
from flinkdl.config.multi_valued import MultiValued


class LabelConfig(Strict):
    """Which column is the label. With ``threshold`` the label is ``value >= threshold``
    (MovieLens: rating >= 4); without it the column must hold 0 or 1."""

    column: str = "label"
    threshold: float | None = None


class CategoricalField(Strict):
    """An ID field, hashed with mmh3 into the shared bucket space.

    ``type`` fixes how the raw value is hashed: ``int`` hashes the int64 value
    (8 bytes little endian), ``string`` hashes its UTF-8 bytes.
    """

    name: str
    type: Literal["int", "string"] = "string"
    multi: MultiValued | None = Field(None, description="a list of ids (a bag, pooled): flinkdl/config/multi_valued.py")


class NumericField(Strict):
    name: str
    transform: Literal["log1p", "identity"] = "log1p"


class FeatureConfig(Strict):
    """Declarative feature schema: raw columns → hashed ids + dense numerics."""

    event_id: str | None = Field("event_id", description="column with the event id; null = row position")
    timestamp: str | None = None
    label: LabelConfig = LabelConfig()
    categorical: list[CategoricalField] = Field(default_factory=list)
    numeric: list[NumericField] = Field(default_factory=list)
    crosses: list[list[str]] = Field(default_factory=list, description="pairs of categorical names")
    hash_bits: int = Field(22, ge=8, le=31, description="bucket space = 2**hash_bits rows")
    hash_seed: int = 0
    max_field_bytes: int = Field(65536, ge=1, description="a longer string value is a dead letter (field_too_long)")

    @field_validator("categorical", "numeric", mode="before")
    @classmethod
    def _names_to_fields(cls, v: object) -> object:
        """Accept plain names (``[C1, C2]``) as shorthand for ``{name: C1}``."""
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

    @model_validator(mode="after")
    def _check_crosses(self) -> FeatureConfig:
        names = {c.name for c in self.categorical}
        for cross in self.crosses:
            if len(cross) != 2:
                raise ValueError(f"features.crosses: {cross!r} must name exactly 2 categorical fields")
            for n in cross:
                if n not in names:
                    raise ValueError(f"features.crosses: {n!r} is not a categorical field (have {sorted(names)})")
                if n in {c.name for c in self.bags}:
                    raise ValueError(f"features.crosses: {n!r} is multi-valued (a cross needs one id per event)")
        if not self.categorical and not self.numeric:
            raise ValueError("features: need at least one categorical or numeric field")
        return self

    @property
    def singles(self) -> list[CategoricalField]:
        """The single-valued categorical fields, in config order (one id column each)."""
        return [c for c in self.categorical if c.multi is None]

    @property
    def bags(self) -> list[CategoricalField]:
        """The multi-valued categorical fields, in config order (``multi.max_len`` id columns each)."""
        return [c for c in self.categorical if c.multi is not None]

    @property
    def n_id_fields(self) -> int:
        """Id columns: one per single-valued field and cross, ``max_len`` per multi-valued field."""
        return len(self.singles) + len(self.crosses) + sum(c.multi.max_len for c in self.bags if c.multi)

    @property
    def n_dense(self) -> int:
        return 2 * len(self.numeric)  # value + missing indicator

    @property
    def buckets(self) -> int:
        return 1 << self.hash_bits


#: Raw columns of the built-in click stream and of Criteo-style files.
CRITEO_LIKE_FEATURES: dict = {
    "event_id": "event_id",
    "timestamp": "ts",
    "label": {"column": "label"},
    "categorical": [{"name": f"C{i}", "type": "int"} for i in range(1, 27)],
    "numeric": [f"I{i}" for i in range(1, 14)],
    "crosses": [],
}
