"""Dead letters: input rows the parse/featurize stage rejected, with why.

>>> DeadLetter(NOT_NUMERIC, field="I3", value="abc", raw="0,1,abc", position=7).to_json()
'{"reason": "not_numeric", "field": "I3", "value": "abc", "raw": "0,1,abc", "position": 7}'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

FIELD_COUNT = "field_count"  #: wrong number of fields on a line (``value`` says how many)
NOT_NUMERIC = "not_numeric"  #: a numeric field that is not a finite number
LABEL_MISSING = "label_missing"  #: label null or empty
LABEL_INVALID = "label_invalid"  #: label not a number, or not 0/1 when no threshold is set
UNDECODABLE = "undecodable"  #: the line had bytes that are not UTF-8 (it contains U+FFFD)
BAD_ID = "bad_id"  #: a non-integer in an ``int`` categorical field or in the event id
MALFORMED = "malformed"  #: a JSON message that does not parse or is not one object
CORRUPT_ARROW = "corrupt_arrow"  #: a message that is not an Arrow IPC stream (``raw`` = base64)

REASONS = (FIELD_COUNT, NOT_NUMERIC, LABEL_MISSING, LABEL_INVALID, UNDECODABLE, BAD_ID, MALFORMED, CORRUPT_ARROW)


@dataclass
class DeadLetter:
    """One rejected row. ``position`` is the row's stream position (see ``parse``/``transform``)."""

    reason: str
    field: str | None = None
    value: str | None = None
    raw: str | None = None
    position: int | None = None

    def to_json(self) -> str:
        """One JSON object on one line (for a ``.jsonl`` dead-letter file)."""
        return json.dumps(asdict(self), ensure_ascii=False)
