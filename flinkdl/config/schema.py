"""Typed, validated job configuration.

A job config is a YAML document whose top-level sections mirror the data path:
``source`` → ``features`` → ``model`` / ``worker`` → ``sinks``. Every model is
strict (``extra="forbid"``): an unknown key or a value of the wrong kind fails
at start with the dotted key, the offending value and what was expected.

>>> cfg = JobConfig.model_validate({"source": {"kind": "generator"}})
>>> cfg.model.name, cfg.source.generator.batch_size
('deepfm', 4096)
"""

from __future__ import annotations

from pydantic import Field, model_validator

from flinkdl.config.base import Strict
from flinkdl.config.enrich import SideTable
from flinkdl.config.features import (
    CRITEO_LIKE_FEATURES,
    CategoricalField,
    FeatureConfig,
    LabelConfig,
    NumericField,
)
from flinkdl.config.feedback import FeedbackConfig, check_feedback_job
from flinkdl.config.flink import FlinkOptions
from flinkdl.config.job import EvaluationConfig, JobSection, MetricsConfig, WindowConfig
from flinkdl.config.model import ModelConfig, OptimizerConfig, PsConfig, WorkerConfig
from flinkdl.config.parallel import ParallelConfig, check_sync_steps
from flinkdl.config.publish import GateConfig, PublishConfig
from flinkdl.config.serving import ServingConfig
from flinkdl.config.sinks import KafkaPredictionsSink, PredictionsSink, SinksConfig
from flinkdl.config.sources import DirectoryConfig, GeneratorConfig, KafkaSourceConfig, SourceConfig
from flinkdl.config.tensorboard import TensorBoardConfig

# The public config module: every section is importable from here.
__all__ = [
    "CRITEO_LIKE_FEATURES",
    "CategoricalField",
    "DirectoryConfig",
    "EvaluationConfig",
    "FeatureConfig",
    "FeedbackConfig",
    "GateConfig",
    "GeneratorConfig",
    "JobConfig",
    "JobSection",
    "KafkaPredictionsSink",
    "KafkaSourceConfig",
    "LabelConfig",
    "MetricsConfig",
    "ModelConfig",
    "NumericField",
    "OptimizerConfig",
    "ParallelConfig",
    "PredictionsSink",
    "PsConfig",
    "PublishConfig",
    "ServingConfig",
    "SideTable",
    "SinksConfig",
    "SourceConfig",
    "Strict",
    "TensorBoardConfig",
    "WindowConfig",
    "WorkerConfig",
]


class JobConfig(Strict):
    job: JobSection = JobSection()
    source: SourceConfig = SourceConfig()
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig.model_validate(CRITEO_LIKE_FEATURES))
    model: ModelConfig = ModelConfig()
    worker: WorkerConfig = WorkerConfig()
    sinks: SinksConfig = SinksConfig()
    ps: PsConfig = PsConfig()
    parallel: ParallelConfig = ParallelConfig()
    serving: ServingConfig = ServingConfig()
    feedback: FeedbackConfig | None = None
    evaluation: EvaluationConfig = EvaluationConfig()
    metrics: MetricsConfig = MetricsConfig()
    publish: PublishConfig = PublishConfig()
    tensorboard: TensorBoardConfig = TensorBoardConfig()
    flink: FlinkOptions = Field(default_factory=dict, description="Flink options, passed through (-D wins)")
    enrich: list[SideTable] = Field(default_factory=list, description="side tables joined to each event")

    @model_validator(mode="after")
    def _exactly_once_needs(self) -> JobConfig:
        if not self.job.exactly_once:
            return self
        if not self.ps.enabled:
            raise ValueError("job.exactly_once: true needs ps.enabled: true (the model state lives on the PS)")
        if self.job.checkpoint_interval_s is None:
            raise ValueError("job.exactly_once: true needs job.checkpoint_interval_s (got null)")
        if self.job.parallelism > 1 and self.ps.single_writer:  # writer lanes journal deltas
            raise ValueError("job.exactly_once at job.parallelism > 1 needs ps.single_writer: false or null "
                             "(see docs/EXACTLY_ONCE.md)")
        return self

    @model_validator(mode="after")
    def _sync_steps_need(self) -> JobConfig:
        check_sync_steps(self.parallel, self.job.parallelism, self.ps.enabled, self.source.kind, self.model.name,
                         self.model.fresh_scores, self.job.exactly_once,
                         self.model.micro_batch_rows or self.source.generator.batch_size,
                         self.source.kafka.reader if self.source.kafka else None, self.feedback is not None)
        return self

    @model_validator(mode="after")
    def _side_columns_are_new(self) -> JobConfig:
        source = (self.source.directory.columns if self.source.kind == "directory" and self.source.directory
                  else self.source.kafka.columns if self.source.kind == "kafka" and self.source.kafka else None) or []
        added = [c for t in self.enrich for c in t.columns]
        clash = sorted({c for c in added if c in source or added.count(c) > 1})
        if clash:
            raise ValueError(f"enrich: columns {clash} are already source columns or added by another table")
        return self

    @model_validator(mode="after")
    def _time_windows_need_timestamp(self) -> JobConfig:
        if any(w.kind.endswith("time") for w in self.evaluation.windows) and not self.features.timestamp:
            raise ValueError("evaluation.windows: event-time windows need features.timestamp (a column in ms)")
        return self

    @model_validator(mode="after")
    def _feedback_needs(self) -> JobConfig:
        if self.feedback is not None:
            k = self.source.kafka
            check_feedback_job(self.feedback, self.source.kind, k.format if k else None, self.features.event_id,
                               self.features.timestamp, exactly_once=self.job.exactly_once,
                               parallelism=self.job.parallelism)
        return self
