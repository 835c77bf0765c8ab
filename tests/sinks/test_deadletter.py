"""The run's dead-letter log (file + counts, schema-drift notices apart) and dead-letter topic messages."""

from __future__ import annotations

import json
from pathlib import Path

from flinkdl.exchange.letters import encode_letters
from flinkdl.features.deadletter import SCHEMA_DRIFT, DeadLetter, Notice
from flinkdl.sinks.deadletter import DeadLetterLog, kafka_message


def lines(*items: DeadLetter | Notice) -> bytes:
    return encode_letters([x.to_dict() for x in items if isinstance(x, DeadLetter)],
                          [x.to_dict() for x in items if isinstance(x, Notice)])


def test_log_writes_dead_letters_and_counts_notices_apart(tmp_path: Path) -> None:
    log = DeadLetterLog(tmp_path / "dead.jsonl")
    assert log.add(b"") == ({}, {})
    reasons, drift = log.add(lines(DeadLetter("empty", position=1), Notice(SCHEMA_DRIFT, "new", 3, 0),
                                   DeadLetter("not_finite", "n", "nan", position=2)))
    assert reasons == {"empty": 1, "not_finite": 1} and drift == {"new": 3}
    log.add(lines(Notice(SCHEMA_DRIFT, "new", 2, 5), DeadLetter("empty", position=9)))
    log.close()
    assert log.count == 3 and log.by_reason == {"empty": 2, "not_finite": 1} and log.drift == {"new": 5}
    written = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in written] == ["empty", "not_finite", "empty"]  # notices are not dead letters


def test_kafka_message_headers_name_reason_field_value_and_encoding() -> None:
    d = DeadLetter("undecodable", value="byte 0xff at 0", raw="/w==", position=4, raw_encoding="base64")
    value, headers = kafka_message(d.to_dict())
    assert value == b"/w==" and dict(headers) == {"reason": b"undecodable", "value": b"byte 0xff at 0",
                                                  "position": b"4", "raw-encoding": b"base64"}
    big = DeadLetter("field_too_long", "s", "x" * 10_000, raw="y" * 100_000, position=0)
    value, headers = kafka_message(big.to_dict())
    assert len(value) == 64 << 10 and dict(headers)["raw-bytes"] == b"100000"
    assert len(dict(headers)["value"]) < 300
