"""Parallelism 1: train, publish and evaluate in one Python operator.

At ``job.parallelism`` 1 the trainer's operator (:class:`~flinkdl.pipeline.train.GenerateAndTrain`,
:class:`~flinkdl.pipeline.kafka_train.ReadAndTrain`) also does what ``publish-kafka`` and
``evaluate+sink`` did after it: each prediction envelope it makes goes, in the same call, to the
Kafka publisher (if ``sinks.kafka``; it returns once the broker acknowledged the batch) and then to
the run's sink (:class:`~flinkdl.pipeline.sink.EvaluateAndSink`), so no prediction envelope crosses
the JVM.

Exactly-once: the operator keeps both protocols of :mod:`flinkdl.pipeline.recovery` in its keyed
state, so both are in the same checkpoint: the trainer's anchor + tail (a PS version, the batch
indexes or feature envelopes after it) and the sink's (a snapshot file, the prediction envelopes
after it; states ``sink_anchor``, ``sink_tail``). Every input element moves both before the next
one comes, so a barrier cuts both after the same element. A restore resets each to its anchor and
re-applies its own tail, as the two operators did: the trainer's replay emits nothing, and the sink's
replay writes its files again from the snapshot's sizes. A TF worker that dies is still recovered in
place by the trainer alone. The sink's processing-time progress timer is this operator's timer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from pyflink.common import Row
from pyflink.datastream import KeyedProcessFunction, RuntimeContext

from flinkdl.exchange.envelope import Envelope
from flinkdl.pipeline.kafka_train import ReadAndTrain
from flinkdl.pipeline.sink import EvaluateAndSink
from flinkdl.pipeline.train import GenerateAndTrain, Train

if TYPE_CHECKING:
    from flinkdl.sinks.kafka import KafkaPublisher


class InnerSink(EvaluateAndSink):
    """:class:`EvaluateAndSink` as a part of a trainer's operator: its state under names of its own."""

    state_names: ClassVar[tuple[str, str]] = ("sink_anchor", "sink_tail")


class SinkInside(Train):
    """Hands every prediction envelope of the trainer (the next class in the MRO) to the publisher and the sink."""

    def __init__(self, cfg_json: str, max_events: int | None = None) -> None:
        super().__init__(cfg_json)
        self.sink = InnerSink(cfg_json, max_events)

    def open(self, ctx: RuntimeContext) -> None:
        super().open(ctx)
        self.sink.open(ctx)
        self.publisher: KafkaPublisher | None = None
        if self.cfg.sinks.kafka is not None:
            from flinkdl.pipeline.kafka_out import publisher

            self.publisher = publisher(self.cfg, 0)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        for out in super().process_element(value, ctx):
            if isinstance(out, tuple):  # a side output (the trainer's anchors go to PsCut only at p > 1)
                yield out
                continue
            if self.publisher is not None:
                from flinkdl.pipeline.kafka_out import publish

                publish(self.publisher, Envelope.of(out))
            yield from self.sink.process_element(out, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        yield from self.sink.on_timer(timestamp, ctx)

    def close(self) -> None:
        super().close()
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()  # type: ignore[union-attr]
        self.sink.close()


class GenerateTrainAndSink(SinkInside, GenerateAndTrain):
    """The generator's batch index → predictions topic, files and metrics (parallelism 1)."""


class ReadTrainAndSink(SinkInside, ReadAndTrain):
    """A Kafka tick → predictions topic, files and metrics (parallelism 1)."""
