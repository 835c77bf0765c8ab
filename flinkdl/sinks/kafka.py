"""Predictions and dead letters to Kafka topics (confluent-kafka), never dropped silently.

Predictions: one message per event, key = event id (decimal), value = one JSON object::

    {"event_id": 17, "score": 0.0912, "label": 0.0, "model": "deepfm", "model_version": 3,
     "event_ts": null, "processing_ts": 1763760000123, "model_age_ms": 5230}

``score`` is the model's click probability made *before* it trained on the event; ``label`` is
the event's label (null for an unlabelled event: scored, not trained on); ``event_ts`` is the
event's time in epoch ms (``features.timestamp``; null without one, or when a batch has an event
without a time); ``processing_ts`` is epoch ms when the batch was published; ``model_age_ms`` (given by the caller,
:mod:`flinkdl.exchange.freshness`) is scoring time − event time of the newest event the model had
trained on (null when unknown). Dead letters: the rejected
message (``raw``) with headers ``reason``, ``field``, ``value``, ``position`` (and
``raw-encoding: base64`` for binary messages).

:meth:`KafkaPublisher.publish` returns only once every message of the batch is acknowledged
(delivery reports are checked; only failures come back, ``delivery.report.only.error``). Failed
messages are produced again up to ``retries`` times, then :class:`DeliveryError` fails the Flink
task, which restarts from the last checkpoint: at least once. ``transactional`` wraps each batch
in a Kafka transaction, so read_committed consumers see whole batches only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from flinkdl.config.schema import KafkaPredictionsSink
from flinkdl.exchange.letters import decode_letters
from flinkdl.sinks.deadletter import kafka_message

#: Java client properties that librdkafka refuses (it has its own: sasl.username/password, ssl.ca.location).
_JAVA_ONLY = re.compile(r"jaas|truststore|keystore\.type|\.class$")
#: What the producer takes from the source cluster's properties: how to connect, not how to consume
#: (a consumer property such as ``fetch.max.wait.ms`` is not a producer's, and librdkafka refuses it).
_CONNECTION = re.compile(r"^(security\.protocol$|sasl\.|ssl\.)")


class DeliveryError(RuntimeError):
    """Messages could not be delivered after all retries."""


class KafkaPublisher:
    """Publishes prediction batches (and dead letters) for one subtask."""

    def __init__(self, sink: KafkaPredictionsSink, bootstrap: str, model: str,
                 dead_letter_topic: str | None = None, subtask: int = 0,
                 cluster_properties: Mapping[str, str] | None = None) -> None:
        """``cluster_properties``: the source cluster's client properties, whose connection and security
        ones (``security.protocol``, ``sasl.*``, ``ssl.*``) are used when the sink writes to that
        cluster; ``sink.properties`` are applied after them."""
        from confluent_kafka import Producer

        self.sink, self.model, self.dlq = sink, json.dumps(model), dead_letter_topic
        conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "compression.type": "none",
                "delivery.report.only.error": True, "on_delivery": self._on_delivery,
                "queue.buffering.max.messages": 1_000_000, "message.timeout.ms": 30_000}
        if sink.delivery == "transactional":
            conf["transactional.id"] = f"{sink.transactional_id}-{subtask}"
        conf.update({k: v for k, v in (cluster_properties or {}).items()
                     if _CONNECTION.search(k) and not _JAVA_ONLY.search(k)})
        conf.update(sink.properties)
        self.client_properties = {k: v for k, v in conf.items() if k != "on_delivery"}
        self._failed: list[tuple[str, bytes | None, bytes | None, list | None, str]] = []
        self.producer = Producer(conf)
        if sink.delivery == "transactional":
            self.producer.init_transactions(sink.flush_timeout_s)
        self.sent = 0

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._failed.append((msg.topic(), msg.key(), msg.value(), msg.headers(), str(err)))

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: list | None = None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:  # local queue full: let librdkafka send some
                self.producer.poll(0.05)

    def publish(self, preds: pa.RecordBatch, dead_letters: bytes = b"", event_ts: np.ndarray | None = None,
                extra: Mapping[str, int | float | None] | None = None) -> None:
        """Produce one message per prediction (and per dead letter); return once all are acked.

        ``event_ts``: the events' times in epoch ms, one per prediction (``None``: unknown).
        ``extra``: fields added to every prediction of the batch (``model_age_ms``; the serving
        job's ``ps_version_ts``)."""
        if self.sink.delivery == "transactional":
            self._transaction(preds, dead_letters, event_ts, extra)
            return
        self._send(preds, dead_letters, event_ts, extra)
        self._flush_and_retry()

    def _send(self, preds: pa.RecordBatch, dead_letters: bytes, event_ts: np.ndarray | None = None,
              extra: Mapping[str, int | float | None] | None = None) -> None:
        n = preds.num_rows
        if n:
            ids = preds.column("event_id").to_numpy().tolist()
            scores = preds.column("score").to_numpy().astype(np.float64).tolist()
            lab = preds.column("label")
            labels = (lab.to_numpy(zero_copy_only=False).astype(np.float64).tolist() if not lab.null_count
                      else [None if v is None else float(v) for v in lab.to_pylist()])
            versions = preds.column("model_version").to_numpy().tolist()
            more = "".join(f', {json.dumps(k)}: {json.dumps(v)}' for k, v in (extra or {}).items())
            tail = f', "processing_ts": {int(time.time() * 1000)}{more}}}'
            times: list = ["null"] * n if event_ts is None else np.asarray(event_ts, np.int64).tolist()
            topic, model = self.sink.topic, self.model
            for i, s, y, v, t in zip(ids, scores, labels, versions, times, strict=True):
                value = (f'{{"event_id": {i}, "score": {s!r}, "label": {"null" if y is None else repr(y)}, '
                         f'"model": {model}, "model_version": {v}, "event_ts": {t}{tail}')
                self._produce(topic, str(i).encode(), value.encode())
            self.sent += n
        if dead_letters and self.dlq:
            for d in decode_letters(dead_letters).dead:  # notices (schema drift) are not dead letters
                self._produce(self.dlq, None, *kafka_message(d))

    def _flush_and_retry(self) -> None:
        for attempt in range(self.sink.retries + 1):
            left = self.producer.flush(self.sink.flush_timeout_s)
            if left:
                raise DeliveryError(f"{left} messages still queued after {self.sink.flush_timeout_s}s flush")
            if not self._failed:
                return
            failed, self._failed = self._failed, []
            if attempt == self.sink.retries:
                raise DeliveryError(f"{len(failed)} messages failed after {self.sink.retries} retries; "
                                    f"first: topic {failed[0][0]}: {failed[0][4]}")
            time.sleep(min(0.2 * 2 ** attempt, 5.0))
            for topic, key, value, headers, _ in failed:
                self._produce(topic, key, value, headers)

    def _transaction(self, preds: pa.RecordBatch, dead_letters: bytes, event_ts: np.ndarray | None,
                     extra: Mapping[str, int | float | None] | None = None) -> None:
        from confluent_kafka import KafkaException

        for attempt in range(self.sink.retries + 1):
            self.producer.begin_transaction()
            try:
                self._send(preds, dead_letters, event_ts, extra)
                self.producer.commit_transaction(self.sink.flush_timeout_s)
                if not self._failed:
                    return
                raise DeliveryError(f"{len(self._failed)} messages failed: {self._failed[0][4]}")
            except (KafkaException, DeliveryError) as e:
                self._failed = []
                self.producer.abort_transaction(self.sink.flush_timeout_s)
                if attempt == self.sink.retries:
                    raise DeliveryError(f"transaction failed after {self.sink.retries} retries: {e}") from e
                time.sleep(min(0.2 * 2 ** attempt, 5.0))

    def close(self) -> None:
        if self.sink.delivery != "transactional":
            self._flush_and_retry()

