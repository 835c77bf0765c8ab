"""The predictions/dead-letter publisher against a real local broker (tansu)."""

import json

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.schema import KafkaPredictionsSink
from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import read_topic
from flinkdl.exchange.letters import encode_letters
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.features.deadletter import DeadLetter
from flinkdl.sinks.kafka import DeliveryError, KafkaPublisher


def _preds(ids, scores, labels, version=3):
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array(scores, pa.float32()),
                            pa.array(labels, pa.float32()), pa.array([version] * len(ids), pa.int64())],
                           schema=PREDICTION_SCHEMA)


@pytest.mark.parametrize("delivery", ["at_least_once", "transactional"])
def test_publishes_one_json_message_per_event_keyed_by_event_id(kafka_broker, delivery):
    topic, dlq = f"preds-{delivery}", f"dead-{delivery}"
    create_topics(kafka_broker.bootstrap, [topic, dlq])
    pub = KafkaPublisher(KafkaPredictionsSink(topic=topic, delivery=delivery), kafka_broker.bootstrap,
                         "deepfm", dead_letter_topic=dlq)
    batch = _preds([5, 6, 7], [0.1, 0.7, 0.123456789], [0.0, 1.0, None])
    bad = DeadLetter("field_count", value="2 fields, expected 4", raw="1,2", position=9).to_dict()
    pub.publish(batch, encode_letters([bad], [{"notice": "schema_drift", "field": "x", "rows": 1}]))
    pub.close()
    msgs = read_topic(kafka_broker.bootstrap, topic, expect=3)
    assert [m.key() for m in msgs] == [b"5", b"6", b"7"]
    values = [json.loads(m.value()) for m in msgs]
    assert values[2]["score"] == batch.column("score")[2].as_py()  # float32 round-trips exactly
    assert values[2]["label"] is None and values[1]["label"] == 1.0
    assert {k: values[0][k] for k in ("event_id", "model", "model_version", "event_ts")} == {
        "event_id": 5, "model": "deepfm", "model_version": 3, "event_ts": None}
    assert isinstance(values[0]["processing_ts"], int)
    (dead,) = read_topic(kafka_broker.bootstrap, dlq, expect=1)
    assert dead.value() == b"1,2"
    assert dict(dead.headers())["reason"] == b"field_count"
    assert dict(dead.headers())["position"] == b"9"


def test_event_ts_is_the_event_time_when_known(kafka_broker):
    create_topics(kafka_broker.bootstrap, ["preds-ts"])
    pub = KafkaPublisher(KafkaPredictionsSink(topic="preds-ts"), kafka_broker.bootstrap, "lr")
    pub.publish(_preds([1, 2], [0.5, 0.25], [None, 1.0]), event_ts=np.array([1_700_000_000_123, 1_700_000_000_456]))
    pub.close()
    values = [json.loads(m.value()) for m in read_topic(kafka_broker.bootstrap, "preds-ts", expect=2)]
    assert [(v["event_id"], v["event_ts"], v["label"]) for v in values] == [
        (1, 1_700_000_000_123, None), (2, 1_700_000_000_456, 1.0)]


def test_undeliverable_messages_are_retried_then_fail_loudly():
    sink = KafkaPredictionsSink(topic="t", retries=1, properties={"message.timeout.ms": "500"})
    pub = KafkaPublisher(sink, "127.0.0.1:1", "lr")  # nothing listens there
    with pytest.raises(DeliveryError, match="failed after 1 retries"):
        pub.publish(_preds([1], [0.5], [1.0]))


def test_after_a_restart_a_consumer_deduplicating_by_key_sees_each_event_once(kafka_broker):
    """At least once with the local broker: a restarted subtask publishes the batches after its last
    checkpoint again; keyed by event id, a consumer that keeps one message per key (here the last,
    as a compacted topic or an upsert would) sees every event exactly once."""
    topic = "preds-restart"
    create_topics(kafka_broker.bootstrap, [topic])
    sink = KafkaPredictionsSink(topic=topic)
    batches = [_preds(list(range(i * 4, i * 4 + 4)), [0.25] * 4, [1.0, 0.0, 1.0, 0.0], version=i) for i in range(6)]
    first = KafkaPublisher(sink, kafka_broker.bootstrap, "lr", subtask=0)
    for b in batches[:4]:  # the checkpoint covers batches 0-1; 2-3 were published after it
        first.publish(b)
    first.close()  # the task fails here
    again = KafkaPublisher(sink, kafka_broker.bootstrap, "lr", subtask=0)  # restored: replays from batch 2
    for b in batches[2:]:
        again.publish(b.set_column(1, "score", pa.array([0.5] * 4, pa.float32())))
    again.close()
    msgs = read_topic(kafka_broker.bootstrap, topic, expect=32)
    assert len(msgs) == 32, "batches 2-3 twice: at least once"
    latest = {int(m.key()): json.loads(m.value()) for m in msgs}  # dedup by key, the last one wins
    assert sorted(latest) == list(range(24))
    assert all(v["event_id"] == k for k, v in latest.items())
    assert {k for k, v in latest.items() if v["score"] == 0.5} == set(range(8, 24)), "the replay's scores"
