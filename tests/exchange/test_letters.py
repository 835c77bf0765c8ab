"""Dead letters and notices travel as records, decoded once."""

from __future__ import annotations

from flinkdl.exchange.letters import Letters, decode_letters, encode_letters
from flinkdl.features.deadletter import SCHEMA_DRIFT, DeadLetter, Notice


def test_dead_letters_and_notices_come_back_apart_and_in_order() -> None:
    dead = [DeadLetter("empty", position=1).to_dict(), DeadLetter("not_numeric", "n", "x\n\"y", position=2).to_dict()]
    notices = [Notice(SCHEMA_DRIFT, "new", 3, 0).to_dict()]
    back = decode_letters(encode_letters(dead, notices))
    assert back == Letters(dead, notices)
    assert decode_letters(bytearray(encode_letters(dead, []))) == Letters(dead, [])


def test_none_is_empty_bytes() -> None:
    assert encode_letters([], []) == b"" and decode_letters(b"") == decode_letters(None) == Letters()
