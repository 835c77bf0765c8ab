"""A side table kept in a compacted Kafka topic (``enrich[*].kafka``): JSON profiles, latest per key.

Each featurize subtask reads the whole topic from its beginning (assigned partitions, no consumer
group, nothing committed) when it opens: until every partition is at the high watermark seen
then (all zero: not trusted), or nothing new came for :data:`IDLE_S`, or ``load_timeout_s``. Every ``refresh_s`` it then
applies what came since, without waiting. A message is one JSON object holding the key column
(its other values are taken as text); a null or empty value (a tombstone) deletes the row of its
message key. A message that is not such an object is skipped and logged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pyarrow as pa

from flinkdl.config.enrich import SideTable
from flinkdl.features.enrich import LoadedTable

log = logging.getLogger(__name__)
IDLE_S = 2.0  #: at start: the topic is taken as read once nothing new came for this long


def _text(v: object) -> str | None:
    return v if v is None or isinstance(v, str) else json.dumps(v)


class TopicTable(LoadedTable):
    """A compacted topic's rows by key, as a side table."""

    def __init__(self, cfg: SideTable) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

        super().__init__(cfg)
        assert cfg.kafka is not None
        k = cfg.kafka
        self.rows: dict[str, dict[str, str | None]] = {}
        self.skipped = 0
        try:
            self.consumer = Consumer({"bootstrap.servers": k.bootstrap_servers, "group.id": "flinkdl-side-table",
                                      "enable.auto.commit": False, **k.properties})
            meta = self.consumer.list_topics(k.topic, timeout=10).topics[k.topic]
            if meta.error is not None:
                raise ValueError(str(meta.error))
            parts = [TopicPartition(k.topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            self.consumer.assign(parts)
            high = {p.partition: self.consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        except (KafkaException, ValueError) as e:
            raise ValueError(f"enrich: cannot read side topic {k.topic!r} at {k.bootstrap_servers}: {e}") from e
        self._load(high, k.load_timeout_s)

    def _load(self, high: dict[int, int], timeout_s: float) -> None:
        at = {p: 0 for p in high}
        t0 = last = time.monotonic()
        def reading() -> bool:
            now = time.monotonic()
            caught_up = all(at[p] >= h for p, h in high.items()) and sum(high.values()) > 0  # 0: not trusted
            return not caught_up and now - last < IDLE_S and now - t0 < timeout_s

        while reading():
            for m in self.consumer.consume(10_000, 0.2):
                if m.error() is None:
                    self._apply(m)
                    at[m.partition() or 0] = (m.offset() or 0) + 1
                    last = time.monotonic()
        self._rebuild()
        log.info("side topic %s: %d rows", self.cfg.kafka.topic if self.cfg.kafka else "", len(self.rows))

    def _apply(self, m: Any) -> None:
        value = m.value()
        if not value:  # a tombstone: the message key's row goes
            if m.key() is not None:
                self.rows.pop(m.key().decode("utf-8", "replace"), None)
            return
        try:
            obj = json.loads(value)
            key = obj[self.cfg.key] if isinstance(obj, dict) else None
        except (ValueError, KeyError):
            key = None
        if key is None:
            self.skipped += 1
            log.warning("side topic: message at offset %d is not a JSON object with %r; skipped", m.offset(),
                        self.cfg.key)
            return
        self.rows[str(_text(key))] = {c: _text(obj.get(c)) for c in self.cfg.columns}

    def _rebuild(self) -> None:
        self.set_rows(pa.array(list(self.rows), pa.string()),
                      {c: pa.array([r[c] for r in self.rows.values()], pa.string()) for c in self.cfg.columns})

    def reload(self) -> None:
        """Apply the messages that came since the last look (does not wait for any)."""
        msgs = [m for m in self.consumer.consume(10_000, 0) if m.error() is None]
        for m in msgs:
            self._apply(m)
        if msgs:
            self._rebuild()
