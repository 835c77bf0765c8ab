"""The envelope: one constructor, one reader, and the sequence encoding."""

from __future__ import annotations

from pyflink.common import Row

from flinkdl.exchange.envelope import FIELDS, SEQ_BITS, Envelope, sequence


def test_an_envelope_round_trips_through_its_row() -> None:
    env = Envelope(sequence(2, 7), 100, b"payload", b"dead", b"cols")
    row = env.row()
    assert isinstance(row, Row) and Envelope.of(row) == env
    assert Envelope.of(env.with_payload(b"preds").row()) == Envelope(env.seq, 100, b"preds", b"dead", b"cols")
    assert FIELDS[0] == "seq" and len(FIELDS) == len(row)


def test_sequence_numbers_are_unique_across_subtasks() -> None:
    assert sequence(0, 5) == 5 and sequence(1, 0) == 1 << SEQ_BITS
    seqs = {sequence(s, c) for s in range(4) for c in (0, 1, (1 << SEQ_BITS) - 1)}
    assert len(seqs) == 12 and all(q >> SEQ_BITS in range(4) for q in seqs)
