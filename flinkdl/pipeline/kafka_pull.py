"""Kafka in, read by Python (``source.kafka.reader: python``): ticks → a consumer's fetched messages → envelopes.

Flink's Kafka source hands Python one row per message, so row messages must be batched in the JVM
first (:func:`flinkdl.sources.kafka.kafka_stream`: a per-row window aggregate). Here a rate-limited
JVM source of ticks (``datagen``, one tick per ``batch_ms``) drives one Python operator that owns a
librdkafka consumer (``confluent-kafka``): on each tick it takes every message fetched since the last
one (a bounded number) and featurizes them as :class:`~flinkdl.pipeline.kafka_in.KafkaFeatures`
does a chunk, so no event crosses the JVM on its own. :class:`KafkaReader` is that consumer with its
state; :class:`KafkaPull` emits its envelopes to a trainer operator (``Train``), while
:class:`~flinkdl.pipeline.kafka_train.ReadAndTrain` trains on them in the same operator.

Exactly-once: the next offset of every partition is keyed state of this operator, updated with the
envelopes the same tick emits (in process mode the bundle is flushed before the checkpoint barrier,
so state and output agree at every checkpoint); a restore seeks to the checkpointed offsets. Without
a checkpoint the reader starts from ``starting_offsets`` (``committed``: the group's offsets, else
earliest). The offsets of what was emitted are also committed to the group (asynchronously, after
each tick), for lag monitoring and a later start without a checkpoint. One reader (parallelism 1)
reads every partition of the topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.state import ValueStateDescriptor

from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.exchange.envelope import ENVELOPE_TYPE
from flinkdl.pipeline.kafka_in import KafkaFeatures
from flinkdl.pipeline.operator import section

#: most row messages one tick takes (bounds a chunk's memory: a few tens of MB of csv), rounded down to
#: whole ``source.max_batch_rows`` steps, so a backlog is learnt in full steps
MAX_MESSAGES = 100_000
#: most Arrow messages one tick takes (each is a batch of many events)
ARROW_MESSAGES = 32
#: librdkafka's prefetch: enough for a tick at the highest rates, at most 64 MiB per partition
_CONSUMER = {"enable.auto.commit": False, "enable.auto.offset.store": False, "queued.min.messages": 200_000,
             "queued.max.messages.kbytes": 65_536, "fetch.max.bytes": 52_428_800}


def consumer_config(k: KafkaSourceConfig) -> dict[str, Any]:
    """librdkafka settings of the reader: bootstrap, group, the prefetch, then ``source.kafka.properties``."""
    return {"bootstrap.servers": k.bootstrap_servers, "group.id": k.group_id, **_CONSUMER, **k.properties}


def start_offsets(k: KafkaSourceConfig, consumer: Any, partitions: list[int], stored: dict[int, int]) -> list:
    """``TopicPartition``s to assign: the checkpointed offsets, else per ``starting_offsets``."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    fresh = [TopicPartition(k.topic, p) for p in partitions if p not in stored]
    start = {p: OFFSET_END if k.starting_offsets == "latest" else OFFSET_BEGINNING for p in partitions}
    if fresh and k.starting_offsets == "committed":
        for tp in consumer.committed(fresh, timeout=30):
            if tp.offset >= 0:
                start[tp.partition] = tp.offset
    start.update(stored)
    return [TopicPartition(k.topic, p, start[p]) for p in partitions]


class KafkaReader:
    """The consumer of one reader operator, its offsets in keyed state and its featurizer (a plain
    object, not a Flink function): :class:`KafkaPull` and :class:`~flinkdl.pipeline.kafka_train.ReadAndTrain`
    hold one."""

    def __init__(self, cfg_json: str) -> None:
        self.features = KafkaFeatures(cfg_json)

    def open(self, ctx: RuntimeContext, k: KafkaSourceConfig) -> None:
        self.features.open(ctx)
        self.k = k
        self.offsets = ctx.get_state(ValueStateDescriptor("kafka_offsets", Types.STRING()))
        self.consumer: Any = None
        self._stored: dict[str, int] | None = None  # offsets to commit after the tick's output
        self.backlog = False

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    def _connect(self) -> None:
        from confluent_kafka import Consumer

        c = Consumer(consumer_config(self.k))
        meta = c.list_topics(self.k.topic, timeout=30).topics[self.k.topic]
        if meta.error is not None:
            raise RuntimeError(f"source.kafka.topic {self.k.topic!r}: {meta.error}")
        stored = {int(p): o for p, o in json.loads(self.offsets.value() or "{}").items()}
        c.assign(start_offsets(self.k, c, sorted(meta.partitions), stored))
        self.consumer = c

    def take(self, limit: int | None = None) -> list[bytes]:
        """Every message fetched since the last call, at most ``limit`` (default :data:`MAX_MESSAGES`,
        :data:`ARROW_MESSAGES`); the offsets after them go to state (and to the group at :meth:`commit`).
        ``backlog`` tells whether it took as many as it could (more may be waiting)."""
        if self.consumer is None:
            self._connect()
        step = self.features.max_rows
        n = limit or (ARROW_MESSAGES if self.features.arrow else step * max(1, MAX_MESSAGES // step))
        msgs = self.consumer.consume(n, 0)
        self.backlog = len(msgs) >= n
        if not msgs:
            return []
        good, nxt = [], {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise RuntimeError(f"Kafka reader: {err}")
                continue  # a transient error (librdkafka retries)
            good.append(m.value() or b"")  # a tombstone is an empty message: an `empty` dead letter
            nxt[m.partition()] = m.offset() + 1
        stored = json.loads(self.offsets.value() or "{}")
        stored.update({str(p): o for p, o in nxt.items()})
        self.offsets.update(json.dumps(stored))
        self._stored = stored
        return good

    def envelopes(self, msgs: list[bytes]) -> Iterator[Row]:
        """Envelope rows of ``msgs`` (what :meth:`take` returned), made lazily: Arrow messages one by one,
        row messages a decoded piece at a time (:meth:`~flinkdl.pipeline.kafka_in.KafkaFeatures.piece`)."""
        if self.features.arrow:
            for data in msgs:
                yield from self.features.flat_map(Row(data))
        elif msgs:
            yield from self.features.flat_map(Row(msgs, len(msgs)))

    def stored(self) -> dict[str, int]:
        """The offsets after the last :meth:`take` (partition → next offset), for a later :meth:`commit`."""
        return dict(self._stored or {})

    def commit(self, offsets: dict[str, int] | None = None) -> None:
        """Commit ``offsets`` (default: those :meth:`take` last stored) to the group (asynchronously)."""
        from confluent_kafka import TopicPartition

        if offsets is None:
            offsets, self._stored = self._stored, None
        if not offsets:
            return
        tps = [TopicPartition(self.k.topic, int(p), o) for p, o in offsets.items()]
        self.consumer.commit(offsets=tps, asynchronous=True)


class KafkaPull(KeyedProcessFunction):
    """A tick → every message the consumer has fetched → envelopes (``source.kafka.train_in_reader: false``,
    or ``job.parallelism`` > 1: the trainers are another operator)."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json
        self.reader = KafkaReader(cfg_json)

    def open(self, ctx: RuntimeContext) -> None:
        cfg = JobConfig.model_validate_json(self.cfg_json)
        self.reader.open(ctx, section(cfg.source.kafka, "source.kafka"))

    def close(self) -> None:
        self.reader.close()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        msgs = self.reader.take()
        if msgs:
            yield from self.reader.envelopes(msgs)
            self.reader.commit()


def ticks(flink: StreamExecutionEnvironment, k: KafkaSourceConfig) -> DataStream:
    """The JVM's ticks that drive a reader: one every ``k.batch_ms``, all with key 0."""
    from pyflink.table import StreamTableEnvironment

    tenv = StreamTableEnvironment.create(flink)
    tenv.execute_sql(f"""
        CREATE TEMPORARY TABLE kafka_ticks (n BIGINT) WITH (
          'connector' = 'datagen', 'rows-per-second' = '{max(1, round(1000 / k.batch_ms))}',
          'fields.n.kind' = 'random', 'fields.n.min' = '0', 'fields.n.max' = '9')""")
    return tenv.to_data_stream(tenv.sql_query("SELECT n FROM kafka_ticks")).key_by(lambda _: 0, key_type=Types.INT())


def with_section(cfg: JobConfig, k: KafkaSourceConfig) -> str:
    """The job's config as JSON, with ``source.kafka`` = ``k``."""
    return cfg.model_copy(update={"source": cfg.source.model_copy(update={"kafka": k})}).model_dump_json()


def pull_stream(flink: StreamExecutionEnvironment, cfg: JobConfig, k: KafkaSourceConfig) -> DataStream:
    """Feature envelopes of the topic, read by :class:`KafkaPull` (parallelism 1) on ticks every ``k.batch_ms``."""
    return (ticks(flink, k).process(KafkaPull(with_section(cfg, k)), output_type=ENVELOPE_TYPE)
            .name("kafka-read+featurize").set_parallelism(1))
