"""The producers of ``flinkdl produce`` against the local broker: every message acknowledged and readable."""

from __future__ import annotations

import json

import pytest

from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import AckedProducer, encode, file_batches, generator_batches, produce, read_topic
from flinkdl.devtools.produce_feedback import TICK_ID, produce_delayed


def test_produce_and_produce_delayed_deliver_every_message(kafka_broker):
    b = kafka_broker.bootstrap
    create_topics(b, ["plain", "imp", "clk"])
    assert produce(b, "plain", generator_batches(300, batch_size=128), "csv", progress=False) == 300
    msgs = read_topic(b, "plain", expect=300, idle_s=10)
    assert sorted(int(m.key()) for m in msgs) == list(range(300))
    imps, clicks = produce_delayed(b, "imp", "clk", 200, batch_size=64, end_tick_s=60.0)
    assert imps == 200 and 0 < clicks < 200
    assert len(read_topic(b, "imp", expect=imps + 1, idle_s=10)) == imps + 1  # + the end tick
    last = read_topic(b, "clk", expect=clicks + 1, idle_s=10)
    assert len(last) == clicks + 1 and json.loads(last[-1].value())["event_id"] == TICK_ID


def test_acked_producer_fails_when_nothing_is_acknowledged():
    p = AckedProducer("127.0.0.1:1", {"message.timeout.ms": 500})
    p.send("nowhere", b"x")
    with pytest.raises(RuntimeError, match=r"not delivered|failed"):
        p.flush(5)


def test_a_file_with_another_separator_is_read_with_delimiter_and_refused_without(tmp_path):
    p = tmp_path / "ratings.csv"  # Book-Crossing's dump: `;`-separated under a .csv name
    p.write_text('User-ID;ISBN;Book-Rating\n7;034545104X;4\n8;0155061224;5\n9;"a, ""b""";1\n')
    with pytest.raises(ValueError, match="has no ',' but ';': pass --delimiter ';'"):
        file_batches(p)
    (batch,) = file_batches(p, delimiter=";", text=True)
    assert batch.column_names == ["User-ID", "ISBN", "Book-Rating"]
    # messages comma-separated, every value as written (an all-digit ISBN keeps its leading zero)
    assert encode(batch, "csv") == [b"7,034545104X,4", b"8,0155061224,5", b'9,"a, ""b""",1']
    with pytest.raises(ValueError, match="one character"):
        file_batches(p, delimiter="::")
