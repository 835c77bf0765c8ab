"""The Flink functions of Kafka in and out (see :mod:`flinkdl.sources.kafka`, :mod:`flinkdl.sinks.kafka`).

``KafkaFeatures``: a chunk of row messages, or one Arrow message → featurized :data:`ENVELOPE` s.
``PublishKafka``: passes envelopes on unchanged after their predictions (and dead letters) are
acknowledged by the broker, so everything the evaluator counts, and everything before a
checkpoint barrier, is already on the predictions topic.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

from pyflink.common import Row
from pyflink.datastream import FlatMapFunction, MapFunction, RuntimeContext

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import unpack
from flinkdl.features.deadletter import MALFORMED, DeadLetter
from flinkdl.features.layout import PREDICTION_SCHEMA
from flinkdl.pipeline.lifeline import exit_with_taskmanager
from flinkdl.pipeline.operators import _Featurize, subtask_index
from flinkdl.sources.messages import empty_batch


class KafkaFeatures(_Featurize, FlatMapFunction):
    """``Row(messages, n)`` of csv/json messages, or ``Row(message)`` of one Arrow message → envelopes.

    Bad input never fails the task: decoding turns it into dead letters (:mod:`flinkdl.sources.messages`),
    and should a chunk still raise, it is split in halves until the message that raises is alone;
    that one is dead-lettered (``malformed``) and every other message goes on.
    """

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.sources.kafka import decoder

        super().open(ctx)
        self.decoder = decoder(self.cfg)
        self.subtask = subtask_index(ctx)
        self.seq = self.position = 0

    def flat_map(self, element: Row) -> Iterator[Row]:
        if self.cfg.source.kafka.format == "arrow":
            msgs, decode = [element[0]], lambda m, pos: self.decoder.arrow(bytes(m[0] or b""), pos)
        else:
            msgs, decode = [bytes(m) for m in element[0]], self.decoder.rows
        yield from self._chunk(msgs, self.position, decode)
        self.position += len(msgs)

    def _chunk(self, msgs: list, pos: int, decode: Callable) -> Iterator[Row]:
        try:
            raw, letters = decode(msgs, pos)
            rows_in = raw.num_rows + sum(isinstance(d, DeadLetter) for d in letters)
            out = self.envelope((self.subtask << 40) | self.seq, raw, rows_in, letters, pos)
        except Exception as e:  # noqa: BLE001 - a bug in decoding must cost one message, not the job
            if len(msgs) > 1:
                half = len(msgs) // 2
                yield from self._chunk(msgs[:half], pos, decode)
                yield from self._chunk(msgs[half:], pos + half, decode)
                return
            data = bytes(msgs[0] or b"")
            bad = DeadLetter(MALFORMED, value=f"cannot featurize: {type(e).__name__}: {e}",
                             raw=base64.b64encode(data).decode(), position=pos, raw_encoding="base64")
            out = self.envelope((self.subtask << 40) | self.seq, empty_batch(self.decoder.columns), 1, [bad], pos)
        self.seq += 1
        yield out


class PublishKafka(MapFunction):
    """Publishes each envelope's predictions and dead letters, then passes it on."""

    def __init__(self, cfg_json: str):
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.sinks.kafka import KafkaPublisher

        exit_with_taskmanager()
        cfg = JobConfig.model_validate_json(self.cfg_json)
        sink, src = cfg.sinks.kafka, cfg.source.kafka
        bootstrap = sink.bootstrap_servers if sink and sink.bootstrap_servers else src.bootstrap_servers
        dlq = src.dead_letter_topic if src else None
        same_cluster = src is not None and not (sink and sink.bootstrap_servers)
        self.publisher = KafkaPublisher(sink, bootstrap, cfg.model.name, dlq, subtask_index(ctx),
                                        src.properties if same_cluster else None)

    def map(self, env: Row) -> Row:
        self.publisher.publish(unpack(env[2], PREDICTION_SCHEMA), env[3])
        return env

    def close(self) -> None:
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()


