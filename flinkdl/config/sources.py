"""Config of the event sources: ``source`` (generator, watched directory, Kafka topic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from flinkdl.config.base import Strict
from flinkdl.config.generator_family import FamilyConfig, apply_preset


class GeneratorConfig(Strict):
    """The built-in Criteo-like click stream (see :mod:`flinkdl.sources.generator`)."""

    seed: int = 7
    events: int | None = Field(1_000_000, gt=0, description="total events; null = unbounded")
    batch_size: int = Field(4096, gt=0, le=1_000_000)
    drift_at: int = Field(500_000, ge=0, description="event index where the hidden model drifts")
    start_ts_ms: int = 1_700_000_000_000
    events_per_s: float = Field(1000.0, gt=0, description="event-time rate (timestamps), not a throttle")
    max_rate_per_s: float | None = Field(None, gt=0, description="throttle to this many events per second "
                                         "of wall time (demos, soak and fault tests); null = as fast as it goes")
    preset: str | None = Field(None, description="a named member of the generator family (family-0..4, "
                               "flinkdl/config/generator_family.py): sets seed, drift_at and family")
    family: FamilyConfig = FamilyConfig()

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data)


class DirectoryConfig(Strict):
    """A watched directory of CSV/TSV files (Flink FileSource, continuous monitoring).

    Files must appear atomically: write ``.name.tmp`` (hidden files are ignored) then rename.
    """

    path: Path
    format: Literal["csv", "tsv"] = "csv"
    columns: list[str] = Field(min_length=1, description="column names in file order")
    header: bool = False
    monitor_interval_s: float = Field(1.0, gt=0)
    batch_ms: int = Field(200, gt=0, description="lines are grouped into batches per processing-time window")
    pad_short_rows: bool = Field(False, description="accept rows missing trailing empty fields (Criteo dumps)")

    @property
    def delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","


class KafkaSourceConfig(Strict):
    """A Kafka topic read by Flink's KafkaSource (offsets live in Flink checkpoints).

    ``csv``/``json``: one event per message; messages are grouped into chunks in the JVM (a
    ``batch_ms`` processing-time window) before crossing to Python. ``arrow``: one message is one
    Arrow IPC stream holding one RecordBatch of many events. Undecodable or malformed messages
    become dead letters (file, and ``dead_letter_topic`` with the reason in a header).
    """

    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    group_id: str = "flinkdl"
    format: Literal["csv", "json", "arrow"] = "csv"
    columns: list[str] | None = Field(None, description="csv: column names in message field order")
    starting_offsets: Literal["committed", "earliest", "latest"] = Field(
        "committed", description="without a checkpoint: committed = the group offsets, else earliest")
    batch_ms: int = Field(200, gt=0, description="csv/json messages are grouped per processing-time window")
    reader: Literal["flink", "python"] = Field("flink", description=(
        "flink: Flink's Kafka source (row messages batched in the JVM per batch_ms window); python: one Python "
        "consumer (confluent-kafka) takes what was fetched every batch_ms, offsets in Flink's keyed state "
        "(flinkdl/pipeline/kafka_pull.py)"))
    train_in_reader: bool = Field(True, description=(
        "reader python at job.parallelism 1 without feedback: read, featurize and train in one Python operator "
        "(flinkdl/pipeline/kafka_train.py), so no feature batch crosses the JVM; false: the reader's operator "
        "feeds the trainer's"))
    dead_letter_topic: str | None = Field(None, description="bad messages also go here (reason in a header)")
    properties: dict[str, str] = Field(default_factory=dict, description="extra Kafka client properties")

    @model_validator(mode="after")
    def _csv_needs_columns(self) -> KafkaSourceConfig:
        if self.format == "csv" and not self.columns:
            raise ValueError("source.kafka.columns: format 'csv' needs the column names in field order")
        return self


#: default of ``source.max_batch_rows``: at most a 200 ms window of a 2.5k ev/s stream, so a live stream's
#: steps are unchanged up to that rate, and a backlog is learnt as such a stream would be
DEFAULT_MAX_BATCH_ROWS = 512


class SourceConfig(Strict):
    """Where events come from. ``max_batch_rows`` applies to the directory and Kafka sources alike."""

    kind: Literal["generator", "directory", "kafka"] = "generator"
    generator: GeneratorConfig = GeneratorConfig()
    directory: DirectoryConfig | None = None
    kafka: KafkaSourceConfig | None = None
    max_batch_rows: int = Field(DEFAULT_MAX_BATCH_ROWS, ge=1, le=1_000_000, description=(
        "a chunk of lines (directory window) or messages (Kafka window, Arrow message) goes to the model in "
        "batches of at most this many rows: a dropped file or a lagging topic's backlog arrives as a few huge "
        "chunks, and is learnt in prequential steps of this size"))

    @model_validator(mode="before")
    @classmethod
    def _old_directory_key(cls, data: object) -> object:
        """``source.directory.max_batch_rows`` (the key's old place) is read as ``source.max_batch_rows``."""
        if isinstance(data, dict) and isinstance(d := data.get("directory"), dict) and "max_batch_rows" in d:
            d = dict(d)
            value = d.pop("max_batch_rows")
            data = {**data, "directory": d}
            data.setdefault("max_batch_rows", value)
        return data

    @model_validator(mode="after")
    def _directory_needs_section(self) -> SourceConfig:
        if self.kind == "directory" and self.directory is None:
            raise ValueError("source.kind is 'directory' but source.directory is missing")
        if self.kind == "kafka" and self.kafka is None:
            raise ValueError("source.kind is 'kafka' but source.kafka is missing")
        return self
