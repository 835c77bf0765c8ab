"""The serving job (``flinkdl serve``): score a request topic with the PS's latest committed model (or, with
``serving.source: published``, the highest published version: :mod:`flinkdl.publish.serving`).

::

    KafkaSource (own group) ─► KafkaFeatures ─► ScoreRequests ─► predictions + dead letters to Kafka
                                                (model from the PS, refreshed between batches)

No training, no evaluation: :class:`ScoreRequests` scores each feature envelope in the operator
with TF (``model.predict``), publishes it (:mod:`flinkdl.sinks.kafka`) with the PS version, its
commit time and the model's age, and emits one line each time it loads a newer version. A
background thread polls the PS every ``serving.refresh_s``, so the model follows the trainer even
while no request arrives.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyflink.common import Row, Types
from pyflink.datastream import FlatMapFunction, RuntimeContext, StreamExecutionEnvironment

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.eval_columns import read_eval_columns
from flinkdl.exchange.freshness import Stamps, read_stamps
from flinkdl.exchange.schema import PREDICTION_SCHEMA, FeatureLayout, prediction_labels
from flinkdl.pipeline.operator import open_operator, section
from flinkdl.pipeline.routing import subtask_index

if TYPE_CHECKING:
    from flinkdl.ps.refresh import Loaded, Refresher
    from flinkdl.telemetry.exporter import ServingMetrics


def serving_job(cfg: JobConfig) -> JobConfig:
    """``cfg`` as the serving job runs it: ``serving:``'s group, starting offsets and parallelism."""
    if cfg.source.kind != "kafka":
        raise ValueError(f"flinkdl serve reads a Kafka request topic: source.kind must be 'kafka', "
                         f"got {cfg.source.kind!r}")
    k, s = section(cfg.source.kafka, "source.kafka"), cfg.serving
    section(cfg.sinks.kafka, "sinks.kafka")
    kafka = k.model_copy(update={"group_id": s.group_id or f"{k.group_id}-serving",
                                 "starting_offsets": s.starting_offsets})
    return cfg.model_copy(update={
        "source": cfg.source.model_copy(update={"kafka": kafka}),
        "job": cfg.job.model_copy(update={"parallelism": s.parallelism or cfg.job.parallelism})})


def features(batch: pa.RecordBatch, layout: FeatureLayout) -> tuple[np.ndarray, np.ndarray]:
    """A feature batch's ``ids [B, F]`` (int64) and ``dense [B, D]`` (float32)."""
    cols = [c.to_numpy(zero_copy_only=False) for c in batch.columns]
    ids = np.stack(cols[2:2 + layout.n_ids], axis=1) if layout.n_ids else np.zeros((batch.num_rows, 0), np.int64)
    dense_cols = cols[2 + layout.n_ids:]
    dense = np.stack(dense_cols, axis=1) if dense_cols else np.zeros((batch.num_rows, 0), np.float32)
    return ids.astype(np.int64), dense.astype(np.float32)


class ScoreRequests(FlatMapFunction):
    """Feature envelope → scores published to ``sinks.kafka``; yields a line per model refresh."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.models.registry import build_model
        from flinkdl.pipeline.kafka_out import publisher
        from flinkdl.ps.client import PsClient
        from flinkdl.ps.refresh import ModelRefresher
        from flinkdl.publish.serving import PublishedRefresher

        cfg = open_operator(self.cfg_json)
        self.subtask = subtask_index(ctx)
        self.layout = FeatureLayout.from_config(cfg.features)
        self.schema = self.layout.schema()
        self.refresher: Refresher
        if cfg.serving.source == "published":  # only versions that passed the gate (docs/PUBLISH.md)
            self.refresher = PublishedRefresher(cfg.publish.dir, cfg.serving.refresh_s)
        else:
            self.refresher = ModelRefresher(build_model(self.layout, cfg.model), PsClient.from_config(cfg.ps),
                                            cfg.ps.table_prefix, cfg.serving.refresh_s)
        self.publisher = publisher(cfg, self.subtask)
        self.metrics: ServingMetrics | None = None
        if cfg.metrics.enabled:
            from flinkdl.telemetry.exporter import ServingMetrics

            self.metrics = ServingMetrics(cfg, self.subtask)
            self.metrics.endpoint.start()
        self._lines: deque[str] = deque()  # refresh lines, yielded with the next request
        got = self.refresher.refresh()  # the first version, loaded before any request
        if got is not None:
            self._on_loaded(got)
        self.refresher.poll_in_background(self._on_loaded)

    def _on_loaded(self, got: Loaded) -> None:
        if self.metrics is not None:
            self.metrics.loaded(got.version, got.lag_s)
        self._lines.append(f"serving: subtask {self.subtask} loaded model version {got.version} "
                           f"({got.lag_s:.2f} s after its commit)")

    def flat_map(self, value: Row) -> Iterator[str]:
        while self._lines:
            yield self._lines.popleft()
        t0 = time.perf_counter()
        env = Envelope.of(value)
        batch = unpack(env.payload, self.schema)
        n = batch.num_rows
        with self.refresher.lock:  # the version and the variables it scores with belong together
            loaded = self.refresher.loaded
            if loaded is None:
                raise RuntimeError("no committed model version on the parameter server")
            if n:
                ids, dense = features(batch, self.layout)
                scores = self.refresher.model.predict(ids, dense).numpy()  # type: ignore[union-attr]
            else:
                scores = np.zeros(0, np.float32)
        stamps = Stamps(read_stamps(env.eval_columns).arrived_ms, int(time.time() * 1000), loaded.trained_event_ts)
        label = batch.column("label").to_numpy(zero_copy_only=False)
        preds = pa.record_batch([batch.column("event_id"), pa.array(scores, pa.float32()), prediction_labels(label),
                                 pa.array(np.full(n, loaded.version, np.int64))], schema=PREDICTION_SCHEMA)
        event_ts, _ = read_eval_columns(env.eval_columns, n)
        freshness = {"ps_version_ts": int(loaded.committed_at * 1000), "model_age_ms": stamps.model_age_ms}
        self.publisher.publish(preds, env.dead_letters, event_ts, freshness)
        if self.metrics is not None:
            self.metrics.scored(n, time.perf_counter() - t0)
            if n:
                self.metrics.freshness.observe(stamps)

    def close(self) -> None:
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()
        if getattr(self, "refresher", None) is not None:
            self.refresher.close()
        metrics = getattr(self, "metrics", None)
        if metrics is not None:
            metrics.endpoint.stop()


def build_serving(flink: StreamExecutionEnvironment, cfg: JobConfig) -> None:
    """Add the serving job for ``cfg`` (already :func:`serving_job`) to ``flink``."""
    from flinkdl.pipeline.streams import feature_stream

    (feature_stream(flink, cfg).flat_map(ScoreRequests(cfg.model_dump_json()), output_type=Types.STRING())
     .name("score+publish").print().name("refreshes").set_parallelism(1))
