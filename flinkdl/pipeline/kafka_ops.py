"""The Flink functions of Kafka in and out (see :mod:`flinkdl.sources.kafka`, :mod:`flinkdl.sinks.kafka`).

``KafkaFeatures``: a chunk of row messages, or one Arrow message → featurized :data:`ENVELOPE`.
``PublishKafka``: passes envelopes on unchanged after their predictions (and dead letters) are
acknowledged by the broker, so everything the evaluator counts, and everything before a
checkpoint barrier, is already on the predictions topic.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyflink.common import Row
from pyflink.datastream import FlatMapFunction, MapFunction, RuntimeContext

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import unpack
from flinkdl.features.deadletter import MALFORMED, DeadLetter
from flinkdl.features.layout import PREDICTION_SCHEMA
from flinkdl.pipeline.operators import _Featurize, subtask_index


class KafkaFeatures(_Featurize, FlatMapFunction):
    """``Row(messages, n)`` of csv/json messages, or ``Row(bytes)`` of one Arrow message → envelope."""

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.sources.kafka import needed_columns

        super().open(ctx)
        self.kafka = self.cfg.source.kafka
        self.columns = needed_columns(self.cfg.features)
        self.subtask = subtask_index(ctx)
        self.seq = self.position = 0

    def flat_map(self, element: Row) -> Iterator[Row]:
        from flinkdl.sources import kafka as k

        seq, pos = (self.subtask << 40) | self.seq, self.position
        if self.kafka.format == "arrow":
            data = bytes(element[0])
            raw, dead = k.parse_arrow(data, self.columns, pos)
            rows_in = raw.num_rows + len(dead)
            try:
                out = self.envelope(seq, raw, rows_in, dead, pos)
            except (KeyError, TypeError, ValueError, NotImplementedError) as e:  # pa.ArrowInvalid is a ValueError
                why = f"cannot featurize: {str(e)[:200]}"
                bad = [DeadLetter(MALFORMED, value=why, raw=f"<{len(data)} bytes of Arrow>", position=pos)]
                out = self.envelope(seq, k.empty_batch(self.columns), 1, bad, pos)
            self.position += max(rows_in, 1)
        else:
            text, n = "\n".join(element[0]), element[1]
            if self.kafka.format == "csv":
                raw, dead = k.parse_csv(text, self.kafka, self.cfg.features, pos)
            else:
                raw, dead = k.parse_json(text, self.columns, pos)
            out = self.envelope(seq, raw, raw.num_rows + len(dead), dead, pos)
            self.position += n
        self.seq += 1
        yield out


class PublishKafka(MapFunction):
    """Publishes each envelope's predictions and dead letters, then passes it on."""

    def __init__(self, cfg_json: str):
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.sinks.kafka import KafkaPublisher

        cfg = JobConfig.model_validate_json(self.cfg_json)
        sink, src = cfg.sinks.kafka, cfg.source.kafka
        bootstrap = sink.bootstrap_servers if sink and sink.bootstrap_servers else src.bootstrap_servers
        dlq = src.dead_letter_topic if src else None
        self.publisher = KafkaPublisher(sink, bootstrap, cfg.model.name, dlq, subtask_index(ctx))

    def map(self, env: Row) -> Row:
        self.publisher.publish(unpack(env[2], PREDICTION_SCHEMA), env[3])
        return env

    def close(self) -> None:
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()


