"""Config of the learner: ``model``, ``worker`` (the TensorFlow process) and ``ps`` (the parameter server)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from flinkdl.config.base import Strict
from flinkdl.config.dynamic import DynamicConfig
from flinkdl.config.ensemble import EnsembleConfig
from flinkdl.config.target_stats import TargetStatsConfig


class OptimizerConfig(Strict):
    """``adam`` is for ``model.dense_optimizer`` only (its slots decay over whole tables)."""

    name: Literal["adagrad", "ftrl", "sgd", "adam"] = "adagrad"
    learning_rate: float = Field(0.05, gt=0)
    l2: float = Field(0.0, ge=0)
    initial_accumulator: float = Field(0.1, gt=0, description="adagrad: each weight's starting sum of squared "
                                       "gradients (its first step is about learning_rate / sqrt of it)")
    accumulator_decay: float = Field(1.0, gt=0, le=1, description="adagrad: acc <- decay * acc + g^2 on each "
                                     "step of a weight (1: plain Adagrad, whose steps shrink for ever; < 1 "
                                     "lets a model re-learn after drift); flinkdl/models/decayed_adagrad.py")
    max_accumulator: float | None = Field(None, gt=0, description="adagrad: cap on the accumulator, i.e. a "
                                          "floor of learning_rate * g / sqrt(cap) on the step (null: none)")


class ModelConfig(Strict):
    """``name`` is a registered model (lr, fm, deepfm) or ``package.module:Class``."""

    name: str = "deepfm"
    embedding_dim: int = Field(8, ge=1, le=512)
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    embedding_init_std: float = Field(0.01, ge=0, description="fm/deepfm: std of the embedding tables' normal "
                                      "initial values (the pairwise term's gradient on a row scales with the "
                                      "other rows' size)")
    embedding_lr_scale: float = Field(1.0, gt=0, description="fm/deepfm: the embeddings are the table times "
                                      "this, so an adagrad table's step on them is about this times "
                                      "learning_rate (its starting accumulator / this^2): faster or slower "
                                      "interactions than the first-order weights")
    linear_lr_scale: float = Field(1.0, gt=0, description="the first-order id weights are their table "
                                   "times this (as embedding_lr_scale)")
    field_weights: bool = Field(False, description="fm/deepfm: one learnt weight per pair of fields on the "
                                "pairwise term (field-weighted FM, FwFM), so the model can favour the pairs "
                                "that interact and mute the rest")
    micro_batch_rows: int | None = Field(None, ge=1, description="learn each batch in steps of at most this "
                                         "many rows, each scored just before its step; null = one step a batch")
    fresh_scores: bool = Field(False, description="score each row of a step as if the step's earlier rows had "
                               "been learnt (adagrad tables; two forward passes); flinkdl/models/in_batch.py")
    xla_step: bool | Literal["auto"] = Field("auto", description="lr: its adagrad step as one XLA-compiled "
                                             "function (~10 % less worker CPU; equal to float32 rounding, not bit "
                                             "for bit). auto: where the model and job allow it (else the generic "
                                             "step, logged); true: required (an error where not allowed); false: "
                                             "never. flinkdl/models/xla_lr.py")
    target_stats: TargetStatsConfig | None = Field(None, description="each id's smoothed click rate (and count) "
                                                   "so far as extra dense inputs (null: none); "
                                                   "flinkdl/models/target_stats.py")
    optimizer: OptimizerConfig = OptimizerConfig()
    dense_optimizer: OptimizerConfig | None = Field(None, description="MLP/dense vars; null = optimizer")
    seed: int = 0
    ensemble: EnsembleConfig | None = Field(None, description="name 'ensemble': the variants and how one is "
                                            "served (null: the defaults, learning rates x{1, 1/2, 2})")
    dynamic: DynamicConfig | None = Field(None, description="name 'dynamic': collisionless ids in a bounded "
                                          "table (prototype; null: the defaults)")

    @model_validator(mode="after")
    def _adam_is_dense_only(self) -> ModelConfig:
        if self.optimizer.name == "adam":
            raise ValueError("model.optimizer.name: 'adam' updates whole embedding tables; use adagrad, ftrl "
                             "or sgd for tables (adam is fine as model.dense_optimizer)")
        return self


class WorkerConfig(Strict):
    """The co-located TensorFlow process, one per Flink subtask."""

    device: str = Field("cpu", description="cpu, gpu or gpu:N (TensorFlow's /GPU:N and /device:GPU:N also "
                        "accepted); stored as TensorFlow's CPU:0 or GPU:N")
    intra_op_threads: int = Field(0, ge=0, description="0 = the model's choice (lr: 1; others: TensorFlow's "
                                  "default)")
    inter_op_threads: int = Field(0, ge=0)
    start_timeout_s: float = Field(120.0, gt=0)
    max_restarts: int = Field(3, ge=0)
    step_timeout_s: float = Field(300.0, gt=0, description="a worker that answers no batch for this long is "
                                  "treated as dead: killed, restarted (and, exactly-once, rolled back + replayed)")
    socket_dir: Path | None = Field(None, description="where unix sockets live; default: a temp dir")
    max_rows_per_s: float | None = Field(None, gt=0, description="cap on the rows each trainer learns per second "
                                         "(null: none): leaves CPU to other work, or paces a fault test")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        """TensorFlow's device name for ``value``: ``CPU:0`` or ``GPU:N``.

        >>> [WorkerConfig(device=d).device for d in ("cpu", "gpu", "/GPU:1", "/device:gpu:0")]
        ['CPU:0', 'GPU:0', 'GPU:1', 'GPU:0']
        """
        match = _DEVICE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"worker.device: {value!r} is not a device; use cpu, gpu or gpu:N (e.g. gpu:0)")
        kind = match["kind"].upper()
        return f"{kind}:{match['index'] or 0}"


#: cpu, gpu, gpu:1, /GPU:0, /device:GPU:0 (case aside)
_DEVICE = re.compile(r"/?(?:device:)?(?P<kind>cpu|gpu)(?::(?P<index>\d+))?", re.IGNORECASE)


class PsConfig(Strict):
    """The long-lived parameter server (``flinkdl ps serve``; see docs/PS.md).

    Each worker loads the server's state on start, tracks the rows it touches and pushes their
    deltas every ``push_every_batches`` batches or ``push_every_s`` seconds (whichever first),
    then refreshes those rows; it commits a version every ``commit_every_pushes`` pushes and at
    the end of its stream.
    """

    enabled: bool = False
    address: str | list[str] = Field("grpc://127.0.0.1:8815", description="grpc://host:port or grpc+tls://host:port; "
                                     "a sharded PS: a list (or commas) of its shards' addresses, shard 0 first")
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
    single_writer_push_every_batches: int | None = Field(
        None, ge=1, description="a single writer's push interval (it pulls nothing, so a push only makes its rows "
        "durable; fewer pushes send each row fewer times); its versions still come every commit_every_pushes "
        "pushes of the push_every_batches / push_every_s cadence. null: push_every_batches if that is set, "
        "else 100. Not with exactly-once")
    connect_timeout_s: float = Field(30.0, ge=0)
    start_local: bool = Field(True, description="flinkdl run starts a local server if none answers")
    checkpoint_dir: str = Field("runs/ps", description="versions of a server started by flinkdl run")
    retain: int = Field(50, ge=1, description="versions a server started by flinkdl run keeps; exactly-once "
                        "needs the version of the last Flink checkpoint among them (docs/EXACTLY_ONCE.md)")
