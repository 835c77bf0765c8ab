"""Config of the outputs: ``sinks`` (predictions file, predictions topic, dead letters)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from flinkdl.config.base import Strict


class PredictionsSink(Strict):
    """The predictions file; at ``job.parallelism > 1`` one part per subtask, ``<stem>-<i><suffix>``."""

    path: Path
    format: Literal["csv", "jsonl"] = "csv"


class KafkaPredictionsSink(Strict):
    """One JSON message per event (see docs/KAFKA.md). ``at_least_once``: every batch is flushed
    and its delivery reports checked before the job moves on; failed deliveries are retried
    ``retries`` times, then the task fails. ``transactional``: each batch is one Kafka
    transaction (brokers with transactions only)."""

    topic: str = Field(min_length=1)
    bootstrap_servers: str | None = Field(None, description="null = source.kafka.bootstrap_servers")
    delivery: Literal["at_least_once", "transactional"] = "at_least_once"
    transactional_id: str = "flinkdl"
    retries: int = Field(3, ge=0)
    flush_timeout_s: float = Field(30.0, gt=0)
    properties: dict[str, str] = Field(default_factory=dict, description="extra producer properties")


class SinksConfig(Strict):
    predictions: PredictionsSink | None = None
    kafka: KafkaPredictionsSink | None = None
    dead_letter: Path | None = Field(None, description="default: RUN_DIR/dead_letter.jsonl")
