"""Kafka out: predictions and dead letters to their topics (see :mod:`flinkdl.sinks.kafka`).

:class:`PublishKafka` passes envelopes on unchanged after their predictions (and dead letters)
are acknowledged by the broker, so everything the evaluator counts, and everything before a
checkpoint barrier, is already on the predictions topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyflink.common import Row
from pyflink.datastream import MapFunction, RuntimeContext

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.eval_columns import read_eval_columns
from flinkdl.exchange.freshness import read_stamps
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.pipeline.operator import open_operator, section
from flinkdl.pipeline.routing import subtask_index

if TYPE_CHECKING:
    from flinkdl.sinks.kafka import KafkaPublisher


def publisher(cfg: JobConfig, subtask: int) -> KafkaPublisher:
    """The subtask's publisher to ``sinks.kafka`` (dead letters to ``source.kafka.dead_letter_topic``)."""
    from flinkdl.sinks.kafka import KafkaPublisher

    sink, src = section(cfg.sinks.kafka, "sinks.kafka"), cfg.source.kafka
    bootstrap = sink.bootstrap_servers or section(src, "source.kafka").bootstrap_servers
    dlq = src.dead_letter_topic if src else None
    # on the source's cluster, the producer inherits its security properties
    inherited = src.properties if src is not None and not sink.bootstrap_servers else None
    return KafkaPublisher(sink, bootstrap, cfg.model.name, dlq, subtask, inherited)


def publish(to: KafkaPublisher, env: Envelope) -> None:
    """An envelope's predictions and dead letters to their topics (returns once the broker acknowledged them)."""
    preds = unpack(env.payload, PREDICTION_SCHEMA)
    event_ts, _ = read_eval_columns(env.eval_columns, preds.num_rows)
    age = read_stamps(env.eval_columns).model_age_ms
    to.publish(preds, env.dead_letters, event_ts, {"model_age_ms": age})


class PublishKafka(MapFunction):
    """Publishes each envelope's predictions and dead letters, then passes it on."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        self.publisher = publisher(open_operator(self.cfg_json), subtask_index(ctx))

    def map(self, value: Row) -> Row:
        publish(self.publisher, Envelope.of(value))
        return value

    def close(self) -> None:
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()
