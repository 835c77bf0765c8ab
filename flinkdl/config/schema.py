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

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flinkdl.config.flink import FlinkOptions


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- sources


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
    max_batch_rows: int = Field(4096, ge=1, le=1_000_000, description="a window's lines go to the model in "
                                "batches of at most this many rows: a file dropped at once arrives in a few "
                                "windows of many lines, and is learnt in prequential steps of this size")
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
    dead_letter_topic: str | None = Field(None, description="bad messages also go here (reason in a header)")
    properties: dict[str, str] = Field(default_factory=dict, description="extra Kafka client properties")

    @model_validator(mode="after")
    def _csv_needs_columns(self) -> KafkaSourceConfig:
        if self.format == "csv" and not self.columns:
            raise ValueError("source.kafka.columns: format 'csv' needs the column names in field order")
        return self


class SourceConfig(Strict):
    kind: Literal["generator", "directory", "kafka"] = "generator"
    generator: GeneratorConfig = GeneratorConfig()
    directory: DirectoryConfig | None = None
    kafka: KafkaSourceConfig | None = None

    @model_validator(mode="after")
    def _directory_needs_section(self) -> SourceConfig:
        if self.kind == "directory" and self.directory is None:
            raise ValueError("source.kind is 'directory' but source.directory is missing")
        if self.kind == "kafka" and self.kafka is None:
            raise ValueError("source.kind is 'kafka' but source.kafka is missing")
        return self


# --------------------------------------------------------------------------- features


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

    @field_validator("categorical", mode="before")
    @classmethod
    def _names_to_fields(cls, v: object) -> object:
        """Accept plain names (``[C1, C2]``) as shorthand for ``{name: C1}``."""
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("numeric", mode="before")
    @classmethod
    def _numeric_names(cls, v: object) -> object:
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
        if not self.categorical and not self.numeric:
            raise ValueError("features: need at least one categorical or numeric field")
        return self

    @property
    def n_id_fields(self) -> int:
        return len(self.categorical) + len(self.crosses)

    @property
    def n_dense(self) -> int:
        return 2 * len(self.numeric)  # value + missing indicator

    @property
    def buckets(self) -> int:
        return 1 << self.hash_bits


# --------------------------------------------------------------------------- model / worker


class OptimizerConfig(Strict):
    """``adam`` is for ``model.dense_optimizer`` only (its slots decay over whole tables)."""

    name: Literal["adagrad", "ftrl", "sgd", "adam"] = "adagrad"
    learning_rate: float = Field(0.05, gt=0)
    l2: float = Field(0.0, ge=0)


class ModelConfig(Strict):
    """``name`` is a registered model (lr, fm, deepfm) or ``package.module:Class``."""

    name: str = "deepfm"
    embedding_dim: int = Field(8, ge=1, le=512)
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    field_weights: bool = Field(False, description="fm/deepfm: one learnt weight per pair of fields on the "
                                "pairwise term (field-weighted FM, FwFM), so the model can favour the pairs "
                                "that interact and mute the rest")
    micro_batch_rows: int | None = Field(None, ge=1, description="learn each batch in steps of at most this "
                                         "many rows, each scored just before its step; null = one step a batch")
    optimizer: OptimizerConfig = OptimizerConfig()
    dense_optimizer: OptimizerConfig | None = Field(None, description="MLP/dense vars; null = optimizer")
    seed: int = 0

    @model_validator(mode="after")
    def _adam_is_dense_only(self) -> ModelConfig:
        if self.optimizer.name == "adam":
            raise ValueError("model.optimizer.name: 'adam' updates whole embedding tables; use adagrad, ftrl "
                             "or sgd for tables (adam is fine as model.dense_optimizer)")
        return self


class WorkerConfig(Strict):
    """The co-located TensorFlow process, one per Flink subtask."""

    device: str = "cpu"
    intra_op_threads: int = Field(0, ge=0, description="0 = TensorFlow default")
    inter_op_threads: int = Field(0, ge=0)
    start_timeout_s: float = Field(120.0, gt=0)
    max_restarts: int = Field(3, ge=0)
    step_timeout_s: float = Field(300.0, gt=0, description="a worker that answers no batch for this long is "
                                  "treated as dead: killed, restarted (and, exactly-once, rolled back + replayed)")
    socket_dir: Path | None = Field(None, description="where unix sockets live; default: a temp dir")
    max_rows_per_s: float | None = Field(None, gt=0, description="cap on the rows each trainer learns per second "
                                         "(null: none): leaves CPU to other work, or paces a fault test")


class PsConfig(Strict):
    """The long-lived parameter server (``flinkdl ps serve``; see docs/PS.md).

    Each worker loads the server's state on start, tracks the rows it touches and pushes their
    deltas every ``push_every_batches`` batches or ``push_every_s`` seconds (whichever first),
    then refreshes those rows; it commits a version every ``commit_every_pushes`` pushes and at
    the end of its stream.
    """

    enabled: bool = False
    address: str = Field("grpc://127.0.0.1:8815", description="grpc://host:port or grpc+tls://host:port")
    token: str | None = Field(None, description="sent as 'authorization: Bearer TOKEN'; write ${ENV_VAR}, "
                              "never the secret itself (--set refuses it)")
    token_file: Path | None = Field(None, description="file holding the token (e.g. a mounted secret); "
                                    "used when token is null")
    tls_root_certs: Path | None = Field(None, description="PEM file to verify a TLS server")
    table_prefix: str = Field("", description="server table name = prefix + model variable name")
    push_every_batches: int = Field(10, ge=1)
    push_every_s: float = Field(5.0, gt=0)
    pull_on_touch: bool = Field(True, description="refresh a row from the server when first touched after a sync")
    single_writer: bool | None = Field(None, description="no other worker writes these tables: no pull on touch, "
                                       "no read-back after a push; null: true at job.parallelism 1")
    commit_every_pushes: int = Field(10, ge=1)
    connect_timeout_s: float = Field(30.0, ge=0)
    start_local: bool = Field(True, description="flinkdl run starts a local server if none answers")
    checkpoint_dir: str = Field("runs/ps", description="versions of a server started by flinkdl run")
    retain: int = Field(50, ge=1, description="versions a server started by flinkdl run keeps; exactly-once "
                        "needs the version of the last Flink checkpoint among them (docs/EXACTLY_ONCE.md)")


# --------------------------------------------------------------------------- sinks / job


class PredictionsSink(Strict):
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


class JobConfig(Strict):
    job: JobSection = JobSection()
    source: SourceConfig = SourceConfig()
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig.model_validate(CRITEO_LIKE_FEATURES))
    model: ModelConfig = ModelConfig()
    worker: WorkerConfig = WorkerConfig()
    sinks: SinksConfig = SinksConfig()
    ps: PsConfig = PsConfig()
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


#: Raw columns of the built-in click stream and of Criteo-style files.
CRITEO_LIKE_FEATURES: dict = {
    "event_id": "event_id",
    "timestamp": "ts",
    "label": {"column": "label"},
    "categorical": [{"name": f"C{i}", "type": "int"} for i in range(1, 27)],
    "numeric": [f"I{i}" for i in range(1, 14)],
    "crosses": [],
}
