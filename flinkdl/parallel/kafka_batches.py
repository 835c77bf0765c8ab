"""Kafka as an indexed source at ``parallel.sync_steps``: batch ``g`` = take ``g`` of the plan, read by offset.

:class:`KafkaBatches` stands in for the generator's :class:`~flinkdl.pipeline.generate.BatchGenerator` in
:class:`~flinkdl.pipeline.train.GenerateAndTrain`: the index source counts takes, rank ``g % p`` gets take
``g``, reads its messages (:class:`~flinkdl.parallel.kafka_plan.TakePlan`) and featurizes them into one
envelope. A take that is not complete yet is waited for, however long (no flush by time: that would make
a round depend on timing). A replay (a restore) reads the same offsets again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flinkdl.config.schema import JobConfig, KafkaSourceConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.features.parse import split_parsed
from flinkdl.parallel.kafka_plan import Take, TakePlan
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.kafka_pull import consumer_config

log = logging.getLogger(__name__)

#: messages one poll may return (what is fetched beyond the take waits in :attr:`KafkaBatches.cache`)
POLL_MESSAGES = 256


def per_take(cfg: JobConfig) -> int:
    """Messages of one take: one Arrow message (a batch of events), else ``parallel.sync_take_messages`` rows."""
    k = cfg.source.kafka
    return 1 if k is not None and k.format == "arrow" else cfg.parallel.sync_take_messages


class KafkaBatches:
    """Take index → its featurized envelope, the messages read by offset from the topic."""

    def __init__(self, cfg: JobConfig, k: KafkaSourceConfig, maker: FeatureMaker, rank: int, world: int) -> None:
        from flinkdl.sources.kafka import decoder

        self.k, self.maker, self.rank, self.world = k, maker, rank, world
        self.decoder, self.per_take, self.arrow = decoder(cfg), per_take(cfg), k.format == "arrow"
        self.consumer: Any = None
        self.plan: TakePlan | None = None
        self.cache: dict[int, dict[int, bytes]] = {}  # partition → offset → value (read, not yet taken)
        self.cursor: dict[int, int] = {}  # partition → the next offset the consumer returns

    def _connect(self) -> TakePlan:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({**consumer_config(self.k), "queued.min.messages": POLL_MESSAGES})
        meta = c.list_topics(self.k.topic, timeout=30).topics[self.k.topic]
        if meta.error is not None:
            raise RuntimeError(f"source.kafka.topic {self.k.topic!r}: {meta.error}")
        parts = sorted(meta.partitions)
        base = {p: c.get_watermark_offsets(TopicPartition(self.k.topic, p), timeout=30)[0] for p in parts}
        self.consumer, self.plan = c, TakePlan(parts, base, self.per_take)
        return self.plan

    def exists(self, index: int) -> bool:
        """Whether take ``index`` is complete now (reads without waiting); :meth:`make` then has it."""
        return self._messages(index, wait_s=0.0) is not None

    def make(self, index: int) -> Envelope:
        """Take ``index`` as one envelope (waits until all its messages are there)."""
        began, msgs = time.monotonic(), self._messages(index, wait_s=60.0)
        while msgs is None:
            log.info("rank %d waits for take %d (%.0f s)", self.rank, index, time.monotonic() - began)
            msgs = self._messages(index, wait_s=60.0)
        position = index * self.per_take
        if self.arrow:
            raw, letters = self.decoder.arrow(msgs[0], position)
        else:
            raw, letters = self.decoder.rows(msgs, position)
        piece, piece_letters, rows_in, first = split_parsed(raw, letters, max(1, raw.num_rows), position)[0]
        return self.maker.envelope(index, piece, rows_in, piece_letters, first)

    def _messages(self, index: int, wait_s: float) -> list[bytes] | None:
        """Take ``index``'s message values, or None if they did not all come within ``wait_s``."""
        plan = self.plan or self._connect()
        take = plan.take(index)
        deadline, polled = time.monotonic() + wait_s, False
        while True:
            have = self.cache.setdefault(take.partition, {})
            if all(o in have for o in range(take.start, take.stop)):
                out = [have[o] for o in range(take.start, take.stop)]
                for o in [o for o in have if o < take.start]:  # a rank's takes move forward
                    del have[o]
                return out
            left = deadline - time.monotonic()
            if polled and left <= 0:
                return None
            self._position(take)
            self._poll(min(max(left, 0.0), 0.5))
            polled = True

    def _position(self, take: Take) -> None:
        """Seek the partition to the take's first missing offset unless the consumer is already before it."""
        from confluent_kafka import TopicPartition

        have = self.cache.get(take.partition, {})
        need = next(o for o in range(take.start, take.stop) if o not in have)
        at = self.cursor.get(take.partition)
        if at is not None and at <= need:
            return
        self.cursor[take.partition] = need
        self.consumer.assign([TopicPartition(self.k.topic, p, o) for p, o in sorted(self.cursor.items())])

    def _poll(self, timeout_s: float) -> None:
        for m in self.consumer.consume(POLL_MESSAGES, timeout_s):
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise RuntimeError(f"Kafka reader: {err}")
                continue  # transient (librdkafka retries)
            p, o = m.partition(), m.offset()
            self.cache.setdefault(p, {})[o] = m.value() or b""
            self.cursor[p] = o + 1

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
