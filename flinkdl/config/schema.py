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
from flinkdl.config.serving import ServingConfig
from flinkdl.config.sinks import KafkaPredictionsSink, PredictionsSink, SinksConfig
from flinkdl.config.sources import DirectoryConfig, GeneratorConfig, KafkaSourceConfig, SourceConfig

# The public config module: every section is importable from here.
__all__ = [
    "CRITEO_LIKE_FEATURES",
    "CategoricalField",
    "DirectoryConfig",
    "EvaluationConfig",
    "FeatureConfig",
    "FeedbackConfig",
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
    "PredictionsSink",
    "PsConfig",
    "ServingConfig",
    "SinksConfig",
    "SourceConfig",
    "Strict",
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
    serving: ServingConfig = ServingConfig()
    feedback: FeedbackConfig | None = None
    evaluation: EvaluationConfig = EvaluationConfig()
    metrics: MetricsConfig = MetricsConfig()
    flink: FlinkOptions = Field(default_factory=dict, description="Flink options, passed through (-D wins)")

    @model_validator(mode="after")
    def _exactly_once_needs(self) -> JobConfig:
        if not self.job.exactly_once:
            return self
        if not self.ps.enabled:
            raise ValueError("job.exactly_once: true needs ps.enabled: true (the model state lives on the PS)")
        if self.job.checkpoint_interval_s is None:
            raise ValueError("job.exactly_once: true needs job.checkpoint_interval_s (got null)")
        if self.job.parallelism != 1:
            raise ValueError(f"job.exactly_once: true needs job.parallelism: 1 (got {self.job.parallelism}); "
                             "see docs/EXACTLY_ONCE.md for parallel workers")
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
                               self.features.timestamp)
        return self
