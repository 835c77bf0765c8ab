"""Config of side tables (``enrich``): profile tables joined to every event by a key, kept fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from flinkdl.config.base import Strict
from flinkdl.config.features import FeatureConfig


class SideTopic(Strict):
    """A compacted Kafka topic of profiles: one JSON object per message, holding the key column;
    the latest message per key wins, and a tombstone (null value) deletes its message key's row."""

    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    load_timeout_s: float = Field(60.0, gt=0, description="most time to read the topic when the job starts")
    properties: dict[str, str] = Field(default_factory=dict, description="extra Kafka consumer properties")


class SideTable(Strict):
    """A CSV/TSV file (``path``) or a compacted Kafka topic (``kafka``) of profiles (users, items,
    advertisers), one row per key.

    Every event gets the table's ``columns`` of the row whose ``key`` equals the event's ``on``
    column (compared as text); an event whose key is not in the table (or is missing) gets
    ``default`` for those columns (a column without a default: a missing value). The file is read
    when the job starts and read again when its modification time changes (checked every
    ``refresh_s``); a file that cannot be read then keeps the last good table. Write a new
    version atomically (a temporary file, then rename). A topic is read from its beginning when
    the job starts, then the messages that came since are applied every ``refresh_s``. The
    joined columns are ordinary raw columns: name them in ``features`` like any other.
    """

    path: Path | None = Field(None, description="a CSV/TSV file (or kafka: a compacted topic)")
    kafka: SideTopic | None = None
    key: str = Field(min_length=1, description="the table's key column")
    on: str | None = Field(None, description="the event column holding the key; null = same name as key")
    columns: list[str] = Field(min_length=1, description="the table columns to add to each event")
    format: Literal["csv", "tsv"] | None = Field(None, description="csv (commas, quotes) or tsv (tabs); "
                                                 "null = by the file's extension: .csv is csv, any other tsv")
    names: list[str] | None = Field(None, description="column names in file order when the file has no header "
                                    "line; null = its first line names the columns")
    default: dict[str, str] = Field(default_factory=dict, description="value per column for a key not found")
    refresh_s: float | None = Field(10.0, gt=0, description="how often the file's mtime (or the topic) "
                                        "is checked; null = never")

    @field_validator("path")
    @classmethod
    def _absolute(cls, p: Path | None) -> Path | None:
        """Relative to where the job is started (the operators may run elsewhere)."""
        return None if p is None else p.resolve()

    @property
    def event_column(self) -> str:
        return self.on or self.key

    @property
    def file_format(self) -> str:
        """``format``, or by the file's extension (``.csv``: csv; any other, e.g. ``.user``: tsv)."""
        if self.format is not None:
            return self.format
        return "csv" if self.path is not None and self.path.suffix.lower() == ".csv" else "tsv"

    @property
    def delimiter(self) -> str:
        return "\t" if self.file_format == "tsv" else ","

    @model_validator(mode="after")
    def _check(self) -> SideTable:
        if (self.path is None) == (self.kafka is None):
            raise ValueError("enrich: a side table needs exactly one of path (a file) and kafka (a topic)")
        if self.key in self.columns:
            raise ValueError(f"enrich.columns: the key {self.key!r} is not a column to add (the event has it)")
        unknown = set(self.default) - set(self.columns)
        if unknown:
            raise ValueError(f"enrich.default: {sorted(unknown)} are not in columns {self.columns}")
        return self


def added_columns(tables: list[SideTable]) -> set[str]:
    """The raw columns the side tables add to each event."""
    return {c for t in tables for c in t.columns}


def source_features(features: FeatureConfig, tables: list[SideTable]) -> FeatureConfig:
    """``features`` without the fields the side tables provide: what a source's own columns must hold."""
    if not tables:
        return features
    added = added_columns(tables)
    return features.model_copy(update={
        "categorical": [c for c in features.categorical if c.name not in added],
        "numeric": [n for n in features.numeric if n.name not in added],
        "crosses": [x for x in features.crosses if not added & set(x)],
    })
