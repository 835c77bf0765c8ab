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

Overlap: a prediction envelope goes into the sink's tail at once, but its work (publish, evaluate,
write) is deferred to the next step's send, so it runs while the worker trains the next batch (as
the sink's own operator did). It is done at once when no step follows right away (the last batch of
the stream or of a Kafka tick), before the progress timer reports, at the end of the Python bundle
(:mod:`flinkdl.pipeline.bundle_end`: before a barrier, a savepoint or the end of input passes, so
the files and the topic hold every batch before it, as without the deferral) and at close; in
thread mode (no bundles) at once. Should a barrier still find an envelope undone, it is in the
sink's tail, so a restore re-applies it; with a Kafka sink the number of tail envelopes not yet
published is keyed state too (``sink_unpublished``), and a restore publishes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from flinkdl.exchange.envelope import Envelope
from flinkdl.pipeline.bundle_end import at_bundle_end
from flinkdl.pipeline.kafka_train import ReadAndTrain
from flinkdl.pipeline.sink import EvaluateAndSink
from flinkdl.pipeline.train import GenerateAndTrain, Train

if TYPE_CHECKING:
    from flinkdl.sinks.kafka import KafkaPublisher


class InnerSink(EvaluateAndSink):
    """:class:`EvaluateAndSink` as a part of a trainer's operator: its state under names of its own."""

    state_names: ClassVar[tuple[str, str]] = ("sink_anchor", "sink_tail")


class SinkInside(Train):
    """Hands every prediction envelope of the trainer (the next class in the MRO) to the publisher and
    the sink, deferred to the next step (see the module doc)."""

    def __init__(self, cfg_json: str, max_events: int | None = None) -> None:
        super().__init__(cfg_json)
        self.sink = InnerSink(cfg_json, max_events)

    def open(self, ctx: RuntimeContext) -> None:
        super().open(ctx)
        self.sink.open(ctx)
        self.publisher: KafkaPublisher | None = None
        self.deferred: list[Row] = []  # envelopes in the sink's tail whose work is not done yet
        # thread mode (PemJa) has no bundles: a barrier may come after any element
        self.defer = self.cfg.job.python_execution_mode != "thread"
        self.unpublished = None
        if self.cfg.sinks.kafka is not None:
            from flinkdl.pipeline.kafka_out import publisher

            self.publisher = publisher(self.cfg, 0)
            if self.exactly_once:
                self.unpublished = ctx.get_state(ValueStateDescriptor("sink_unpublished", Types.INT()))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        for out in super().process_element(value, ctx):
            if isinstance(out, tuple):  # a side output (the trainer's anchors go to PsCut only at p > 1)
                yield out
                continue
            self.flush()  # a batch that trained nothing ran no step to do the last one's work
            self._defer(out)
            if self.defer and self.more_soon():
                at_bundle_end(self.flush)  # else a barrier or the job's stop would find it undone
            else:
                self.flush()
            self.sink.arm_timer(ctx)

    def _defer(self, out: Row) -> None:
        sink = self.sink
        if sink.exactly_once:
            if not sink._recovered:  # the first envelope since open: the sink's snapshot + tail first
                sink._recovered = True
                self._recover_sink()
            sink._record(out, None)
            if self.unpublished is not None:
                self.unpublished.update((self.unpublished.value() or 0) + 1)
        self.deferred.append(out)

    def _recover_sink(self) -> None:
        tail = list(self.sink._tail.get() or ())
        self.sink.recover()
        if self.unpublished is not None:  # deferred before the checkpoint, not published before the failure
            for out in tail[len(tail) - (self.unpublished.value() or 0):]:
                self._publish(out)
            self.unpublished.update(0)

    def during_step(self) -> None:
        self.flush()

    def flush(self, in_state: bool = True) -> None:
        """Do the deferred envelopes' work: publish, then evaluate and write; a snapshot that the sink
        takes on the way becomes its anchor (``in_state`` False: at close, no keyed state to move)."""
        while self.deferred:
            out = self.deferred.pop(0)
            if self.publisher is not None:
                self._publish(out)
                if self.unpublished is not None and in_state:
                    self.unpublished.update(self.unpublished.value() - 1)
            anchor = self.sink.apply(out)[1]
            if anchor is not None and in_state:  # the snapshot holds this envelope, not the ones after it
                self.sink._record(None, anchor)
                for later in self.deferred:
                    self.sink._record(later, None)

    def _publish(self, out: Row) -> None:
        from flinkdl.pipeline.kafka_out import publish

        publish(self.publisher, Envelope.of(out))  # type: ignore[arg-type]

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        self.flush()
        yield from self.sink.on_timer(timestamp, ctx)

    def close(self) -> None:
        if getattr(self, "deferred", None):
            self.flush(in_state=False)
        super().close()
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()  # type: ignore[union-attr]
        self.sink.close()


class GenerateTrainAndSink(SinkInside, GenerateAndTrain):
    """The generator's batch index → predictions topic, files and metrics (parallelism 1)."""


class ReadTrainAndSink(SinkInside, ReadAndTrain):
    """A Kafka tick → predictions topic, files and metrics (parallelism 1)."""
