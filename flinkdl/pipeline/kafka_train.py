"""Kafka read + featurize + train in one Python operator (``source.kafka.reader: python``, ``job.parallelism`` 1).

:class:`ReadAndTrain` is to the Python Kafka reader what
:class:`~flinkdl.pipeline.train.GenerateAndTrain` is to the generator: the JVM carries only ticks
(one per ``batch_ms``), and the feature batches go from the consumer to the TF worker inside one
process, never through the JVM. While the worker trains on one batch the operator featurizes the
next batch of the same tick.

Exactly-once: the consumer's next offsets are keyed state of this operator, written when a tick takes
its messages (:class:`~flinkdl.pipeline.kafka_pull.KafkaReader`); the trainer's anchor + tail
(:mod:`flinkdl.pipeline.recovery`) keep the feature envelopes trained since the last PS version.
A tick (every ``batch_ms``) takes what was fetched (a live stream's batch) a decode piece at a time,
and goes on taking while the consumer has a backlog, for at most ``batch_ms``, so a backlog is learnt
in ticks of ``batch_ms`` whose predictions leave the operator as they end.
A tick runs whole before a checkpoint barrier passes (process mode finishes the bundle first), so
offsets, anchor and tail agree at every checkpoint: a restore seeks to the offsets and replays the tail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from pyflink.common import Row
from pyflink.datastream import DataStream, KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment

from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.pipeline.kafka_pull import ARROW_MESSAGES, KafkaReader, ticks, with_section
from flinkdl.pipeline.operator import section
from flinkdl.pipeline.train import Train

#: most messages one take reads and trains on, in decode pieces (Arrow messages: about as many rows)
TAKE_PIECES = 1
_NOT_MADE = object()  # the next envelope was not made ahead (a batch of only dead letters trains nothing)


def trains_in_reader(cfg: JobConfig) -> bool:
    """Whether the job reads Kafka in its trainer's operator: the Python reader, ``source.kafka.train_in_reader``,
    parallelism 1 (the reader reads every partition), no feedback join."""
    k = cfg.source.kafka
    return (cfg.source.kind == "kafka" and k is not None and k.reader == "python" and k.train_in_reader
            and cfg.job.parallelism == 1 and cfg.feedback is None)


def sync_kafka(cfg: JobConfig) -> bool:
    """Whether the job reads Kafka for synchronous steps: takes by offset in the trainers
    (:mod:`flinkdl.parallel.kafka_batches`), not this reader. At parallelism 1 too, so a job rescaled from a
    savepoint keeps the same takes (take ``g`` does not depend on the parallelism)."""
    return cfg.source.kind == "kafka" and cfg.parallel.sync_steps and cfg.feedback is None


class ReadAndTrain(Train):
    """A tick → the consumer's fetched messages → featurize → TF worker → prediction envelopes."""

    def start(self, ctx: RuntimeContext) -> None:
        super().start(ctx)
        self.reader = KafkaReader(self.cfg_json)
        self.reader.open(ctx, section(self.cfg.source.kafka, "source.kafka"))
        self.pending: Iterator[Row] = iter(())
        self.taken: list[dict[str, int]] = []  # the offsets after each take of this tick not yet committed
        self.ahead: object = _NOT_MADE
        features = self.reader.features
        self.limit = TAKE_PIECES * features.piece()  # messages (Arrow: rows, see _take_limit)
        self.rows_per_message = float(self.limit)  # Arrow messages: the last tick's mean rows per message
        self.budget_s = self.reader.k.batch_ms / 1000
        self.step_s = 0.0  # how long the last step took (the worker's, with what ran meanwhile)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        """Takes (a decode piece each) while the consumer has a backlog, for at most ``batch_ms``: a
        tick's predictions leave the operator when it ends, so a backlog is learnt in ticks of
        ``batch_ms``, not in one tick of all of it. The next take is read and featurized while the worker
        trains on the last batch of the one before, so the worker does not wait for it."""
        self.start_s = time.monotonic()
        self.pending, self.taken = iter(()), []
        if not self._take():
            return
        row = self._next()
        while row is not None:
            self.ahead = _NOT_MADE
            began = time.monotonic()
            yield from super().process_element(row, ctx)
            self.step_s = time.monotonic() - began
            for stored in self.taken[:-1]:  # takes before the newest: all their batches are trained
                self.reader.commit(stored)
            del self.taken[:-1]
            row = self._next() if self.ahead is _NOT_MADE else self.ahead
        for stored in self.taken:
            self.reader.commit(stored)

    def _take(self) -> bool:
        """The consumer's next messages as :attr:`pending` envelopes; False if none were fetched."""
        msgs = self.reader.take(self._take_limit())
        if not msgs:
            return False
        self.taken.append(self.reader.stored())
        self.pending = self._counted(self.reader.envelopes(msgs), len(msgs))
        return True

    def _counted(self, envelopes: Iterator[Row], messages: int) -> Iterator[Row]:
        rows = 0
        for row in envelopes:
            rows += Envelope.of(row).rows_in
            yield row
        self.rows_per_message = max(1.0, rows / messages)

    def _next(self, during_step: bool = False) -> Row | None:
        """The tick's next envelope: of this take, else of a new take while there is a backlog and the
        new take would be trained within ``batch_ms`` (in this tick: its offsets are in state).
        ``during_step``: called while the worker trains, so the new take's batch comes a step later."""
        row = next(self.pending, None)
        if row is not None or not self.reader.backlog:
            return row
        # a step costs about as long as the last one: stop before the next would end past batch_ms, since
        # a longer tick would let ticks queue, and queued ticks go to Python in one bundle
        if time.monotonic() + self.step_s * (1 + during_step) - self.start_s >= self.budget_s:
            return None
        return next(self.pending, None) if self._take() else None

    def _take_limit(self) -> int:
        """Messages a tick takes: row messages, a decode piece; Arrow messages, about as many rows."""
        if not self.reader.features.arrow:
            return self.limit
        return max(1, min(ARROW_MESSAGES, round(self.limit / self.rows_per_message)))

    def apply(self, value: Row, replay: bool = False) -> tuple[list[Row], dict | None]:
        make: Callable[[], None] | None = None if replay else self._make_ahead
        return self.train(Envelope.of(value), replay, make)

    def _make_ahead(self) -> None:
        self.ahead = self._next(during_step=True)

    def more_soon(self) -> bool:
        return self.ahead is not _NOT_MADE and self.ahead is not None  # this tick trains another batch

    def close(self) -> None:
        if getattr(self, "reader", None) is not None:
            self.reader.close()
        super().close()


def read_and_train(flink: StreamExecutionEnvironment, cfg: JobConfig, k: KafkaSourceConfig,
                   max_events: int | None = None) -> DataStream:
    """The topic read, trained on, published and evaluated by one operator at parallelism 1
    (:class:`~flinkdl.pipeline.train_sink.ReadTrainAndSink`); its output stream is empty (the sink's)."""
    from pyflink.common import Types

    from flinkdl.pipeline.train_sink import ReadTrainAndSink

    return (ticks(flink, k).process(ReadTrainAndSink(with_section(cfg, k), max_events), output_type=Types.STRING())
            .name("kafka-read+featurize+train+sink").set_parallelism(1))
