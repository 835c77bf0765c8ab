"""Dead letters: input rows the parse/featurize stage rejected, with why; and schema-drift notices.

Both travel to the sinks as the dicts of their ``to_dict()`` (:mod:`flinkdl.exchange.letters`).

Every dead letter names its ``reason`` (one of :data:`REASONS`), the ``field`` and the
``value`` (cut to :data:`MAX_VALUE_CHARS`), the ``raw`` record (cut to :data:`MAX_RAW_CHARS`;
base64 of the bytes when ``raw_encoding`` is ``"base64"``: non-UTF-8 and Arrow messages) and its
stream ``position``. ``raw_bytes`` is the raw record's full size when it was cut.

>>> DeadLetter(NOT_NUMERIC, field="I3", value="abc", raw="0,1,abc", position=7).to_json()
'{"reason": "not_numeric", "field": "I3", "value": "abc", "raw": "0,1,abc", "position": 7}'
>>> DeadLetter(FIELD_TOO_LONG, field="C1", value="x" * 300).value[-24:]
'... (300 chars in all)'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FIELD_COUNT = "field_count"  #: wrong number of fields on a csv line (truncated row, extra fields)
NOT_NUMERIC = "not_numeric"  #: a numeric field that is not a number
NOT_FINITE = "not_finite"  #: a numeric field that is NaN or ±inf
LABEL_MISSING = "label_missing"  #: no longer produced: an unlabelled event is scored, not dead-lettered
LABEL_INVALID = "label_invalid"  #: label not a number (or NaN)
LABEL_OUT_OF_RANGE = "label_out_of_range"  #: label a number but not 0/1 (when no threshold is set)
UNDECODABLE = "undecodable"  #: bytes that are not UTF-8 (``raw`` = base64 of them where they are known)
BAD_ID = "bad_id"  #: a non-integer in an ``int`` categorical field or in the event id
MISSING_ID = "missing_id"  #: the event id column is null, empty or absent in the record
FIELD_TOO_LONG = "field_too_long"  #: a string value longer than ``features.max_field_bytes``
WRONG_TYPE = "wrong_type"  #: a JSON object/array (or an Arrow list/struct/binary column) where a scalar is due
EMPTY = "empty"  #: an empty or blank Kafka message, or a null value (tombstone)
#: a JSON message that does not parse or is not one object; a csv line whose quote does not close
MALFORMED = "malformed"
CORRUPT_ARROW = "corrupt_arrow"  #: a message that is not an Arrow IPC stream (``raw`` = base64)
MISSING_COLUMN = "missing_column"  #: an Arrow message whose schema lacks a configured column
BAD_LIST = "bad_list"  #: a multi-valued field's list with an empty, null or nested item (or a non-int id)

REASONS = (FIELD_COUNT, NOT_NUMERIC, NOT_FINITE, LABEL_MISSING, LABEL_INVALID, LABEL_OUT_OF_RANGE, UNDECODABLE,
           BAD_ID, MISSING_ID, FIELD_TOO_LONG, WRONG_TYPE, EMPTY, MALFORMED, CORRUPT_ARROW, MISSING_COLUMN, BAD_LIST)

SCHEMA_DRIFT = "schema_drift"  #: notice kind: rows that carried a column the config does not name

MAX_VALUE_CHARS = 200  #: ``DeadLetter.value`` is cut to this many characters
MAX_RAW_CHARS = 64 << 10  #: ``DeadLetter.raw`` is cut to this many characters (64 KiB)


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars in all)"


@dataclass
class DeadLetter:
    """One rejected row. ``position`` is the row's stream position (see ``parse``/``transform``)."""

    reason: str
    field: str | None = None
    value: str | None = None
    raw: str | None = None
    position: int | None = None
    raw_encoding: str | None = None  #: ``"base64"`` when ``raw`` holds base64 of bytes
    raw_bytes: int | None = None  #: the raw record's full length when ``raw`` was cut

    def __post_init__(self) -> None:
        self.value = _cut(self.value, MAX_VALUE_CHARS)
        if self.raw is not None and len(self.raw) > MAX_RAW_CHARS:
            self.raw_bytes = self.raw_bytes or len(self.raw)
            self.raw = self.raw[:MAX_RAW_CHARS]

    def to_dict(self) -> dict[str, Any]:
        """The record as it is written and sent; unset extras are left out."""
        d: dict[str, Any] = {"reason": self.reason, "field": self.field, "value": self.value, "raw": self.raw,
                             "position": self.position}
        if self.raw_encoding is not None:
            d["raw_encoding"] = self.raw_encoding
        if self.raw_bytes is not None:
            d["raw_bytes"] = self.raw_bytes
        return d

    def to_json(self) -> str:
        """One JSON object on one line (a line of the ``.jsonl`` dead-letter file)."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass
class Notice:
    """Not a dead letter: ``rows`` accepted rows carried something ignored (``kind`` = :data:`SCHEMA_DRIFT`:
    a column named ``field`` that the config does not know). Travels with the dead letters."""

    kind: str
    field: str
    rows: int
    position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as it travels (its kind under ``"notice"``, see :mod:`flinkdl.exchange.letters`)."""
        return {"notice": self.kind, "field": self.field, "rows": self.rows, "position": self.position}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

