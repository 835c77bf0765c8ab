"""Config of the run itself: ``job`` (Flink settings), ``evaluation`` (windows, slices) and ``metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from flinkdl.config.base import Strict


class JobSection(Strict):
    name: str = "flinkdl"
    parallelism: int = Field(1, ge=1, le=256)
    run_dir: Path = Path("runs/latest")
    report_every_s: float = Field(2.0, gt=0)
    python_execution_mode: Literal["process", "thread"] = "process"
    python_harness: Literal["loopback", "process"] = Field(
        "loopback", description="mini-cluster only: run the Python operators in the client process (PyFlink's "
        "default) or each task in its own harness process, as a cluster always does (docs/STACK_NOTES.md)")
    checkpoint_interval_s: float | None = Field(None, gt=0, description="null = no checkpoints")
    bundle_size: int | None = Field(None, ge=1, description="batches per PyFlink bundle (a checkpoint waits for "
                                    "it); null: 32 for the generator (indexes come all at once), else 1000")
    bundle_time_ms: int = Field(100, ge=1, description="max time a bundle stays open")
    max_latency_ms: int | None = Field(
        None, ge=5, le=60_000, description="latency target from input message to prediction message; sizes the "
        "Kafka source window (source.kafka.batch_ms), the PyFlink bundles and Flink's buffer timeout from this "
        "one number, over bundle_size/bundle_time_ms (flinkdl/pipeline/latency.py, docs/KAFKA.md); null = the "
        "bulk settings, for throughput")
    checkpoint_dir: Path | None = Field(None, description="retained checkpoints go here (null: Flink default)")
    restore_from: Path | None = Field(None, description="start from this checkpoint/savepoint directory")
    exactly_once: bool = Field(False, description="model and evaluation state exactly-once with respect to "
                               "Flink checkpoints (docs/EXACTLY_ONCE.md); needs ps.enabled and checkpoints")
    snapshot_every_s: float = Field(5.0, gt=0, description="exactly-once: evaluator snapshot interval")
    restart_attempts: int = Field(5, ge=0, description="Flink fixed-delay restart strategy (with checkpoints only)")
    restart_delay_s: float = Field(1.0, ge=0, description="... and the delay between them")


class WindowConfig(Strict):
    """One evaluation window. ``sliding_count``: the last ``size`` events; ``sliding_time``: events
    with event time in ``(latest - size_s, latest]``; ``tumbling_time``: consecutive ``size_s``
    event-time windows (the last closed one is reported); ``tumbling_count``: consecutive blocks
    of ``size`` events."""

    kind: Literal["sliding_count", "sliding_time", "tumbling_count", "tumbling_time"]
    size: int | None = Field(None, gt=0, le=50_000_000, description="events (count windows)")
    size_s: float | None = Field(None, gt=0, description="seconds of event time (time windows)")
    name: str | None = Field(None, pattern=r"^[a-zA-Z0-9_]+$", description="label; default kind + size")

    @model_validator(mode="after")
    def _size_matches_kind(self) -> WindowConfig:
        by_count = self.kind.endswith("count")
        if by_count and (self.size is None or self.size_s is not None):
            raise ValueError(f"evaluation.windows: kind {self.kind!r} needs 'size' (events), not 'size_s'")
        if not by_count and (self.size_s is None or self.size is not None):
            raise ValueError(f"evaluation.windows: kind {self.kind!r} needs 'size_s' (seconds), not 'size'")
        if self.name is None:
            self.name = f"{self.kind}_{self.size}" if by_count else f"{self.kind}_{self.size_s:g}s"
        return self


class EvaluationConfig(Strict):
    """Streaming evaluation at the sink (see :mod:`flinkdl.evaluation.evaluator`)."""

    windows: list[WindowConfig] = Field(default_factory=lambda: [WindowConfig(kind="sliding_count", size=100_000)])
    timestamp_unit: Literal["ms", "s"] = Field("ms", description="unit of features.timestamp")
    cumulative_bins: int = Field(1 << 18, ge=1 << 10, le=1 << 24, description="bounded-memory AUC bins")
    exact_progressive_auc: bool | None = Field(
        None, description="the run's `auc` exact over every event (memory grows with the distinct scores, 20 B "
        "each); false: the bounded binned AUC (within `auc_error_bound`); null: exact on a bounded stream "
        "(generator events or --max-events), bounded on an unbounded one")
    slice_field: str | None = Field(None, description="raw column whose values get their own metrics")
    slice_bins: int = Field(1 << 14, ge=1 << 8, le=1 << 20)
    max_slices: int = Field(32, ge=1, le=1000, description="further slice values are pooled as '__other__'")

    @model_validator(mode="after")
    def _unique_names(self) -> EvaluationConfig:
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluation.windows: duplicate window names {names}")
        return self


class MetricsConfig(Strict):
    """Prometheus ``/metrics`` endpoints. The sink serves on ``port``, worker subtask ``i`` on
    ``port + 1 + i``; ``port: 0`` picks free ports. Every endpoint is written to
    ``RUN_DIR/prometheus/*.json`` (Prometheus ``file_sd`` format)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    flink_port: str | None = Field(None, pattern=r"^\d+(-\d+)?$",
                                   description="Flink's Prometheus reporter port or range; null = off")
