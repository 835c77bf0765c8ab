"""The envelope: one batch on its way through the Flink job, and how its sequence number is made.

Every stream element between the featurize stage and the sink is an :class:`Envelope`, a whole
batch, never a single event. On the Flink side it is a ``Row`` of type :data:`ENVELOPE_TYPE`;
:meth:`Envelope.row` makes that row and :meth:`Envelope.of` reads one back. Fields:

- ``seq``: the batch's sequence number (:func:`sequence`), unique in the job;
- ``rows_in``: raw events it covers, good and bad;
- ``payload``: a packed Arrow batch (:func:`~flinkdl.exchange.channel.pack`): features
  (:func:`~flinkdl.exchange.schema.feature_schema`) before the trainer, predictions
  (:data:`~flinkdl.exchange.schema.PREDICTION_SCHEMA`) after it;
- ``dead_letters``: the rejected events and notices (:mod:`flinkdl.exchange.letters`);
- ``eval_columns``: the evaluator's columns of the good rows (:mod:`flinkdl.exchange.eval_columns`),
  passed through by the trainer.

>>> e = Envelope(sequence(3, 5), 10, b"p", b"", b"")
>>> Envelope.of(e.row()) == e, e.seq >> SEQ_BITS
(True, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyflink.common import Row, Types

#: Bits of a sequence number that count a subtask's batches; the subtask index is above them.
SEQ_BITS = 40

FIELDS = ("seq", "rows_in", "payload", "dead_letters", "eval_columns")

#: Flink type of an envelope row.
ENVELOPE_TYPE = Types.ROW_NAMED(
    list(FIELDS),
    [Types.LONG(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE()),
     Types.PRIMITIVE_ARRAY(Types.BYTE())],
)


def sequence(subtask: int, count: int) -> int:
    """The sequence number of a subtask's ``count``-th batch: ``subtask << 40 | count``."""
    return (subtask << SEQ_BITS) | count


@dataclass(frozen=True, slots=True)
class Envelope:
    """One batch with what travels beside it (see the module doc)."""

    seq: int
    rows_in: int
    payload: bytes
    dead_letters: bytes
    eval_columns: bytes

    @classmethod
    def of(cls, row: Any) -> Envelope:
        """Read a Flink row of :data:`ENVELOPE_TYPE`."""
        return cls(row[0], row[1], row[2], row[3], row[4])

    def row(self) -> Row:
        """The Flink row of this envelope."""
        return Row(self.seq, self.rows_in, self.payload, self.dead_letters, self.eval_columns)

    def with_payload(self, payload: bytes) -> Envelope:
        """The same envelope carrying another payload (the trainer's predictions)."""
        return replace(self, payload=payload)
