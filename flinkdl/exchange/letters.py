"""The ``dead_letters`` field of an envelope: rejected events and notices as structured records.

Encoded once by :func:`encode_letters` (one JSON object per line: a dead letter's
``to_dict()``, or a notice's, which names its kind under ``"notice"``) and decoded once by
:func:`decode_letters`, which parses each line once and sorts the records by their keys.

>>> data = encode_letters([{"reason": "empty", "position": 1}], [{"notice": "schema_drift", "field": "x",
...                        "rows": 2, "position": 0}])
>>> decode_letters(data).dead, [n["field"] for n in decode_letters(data).notices]
([{'reason': 'empty', 'position': 1}], ['x'])
>>> encode_letters([], []), decode_letters(b"")
(b'', Letters(dead=[], notices=[]))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The key that makes a record a notice, not a dead letter.
NOTICE_KEY = "notice"


@dataclass
class Letters:
    """An envelope's dead letters (dicts, in stream order) and notices (dicts), decoded."""

    dead: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)


def encode_letters(dead: Iterable[Mapping[str, Any]], notices: Iterable[Mapping[str, Any]]) -> bytes:
    """Dead letters and notices → the envelope's bytes (``b""`` when there are none)."""
    records = [*dead, *notices]
    if not records:
        return b""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def decode_letters(data: bytes | bytearray | None) -> Letters:
    """Inverse of :func:`encode_letters`."""
    out = Letters()
    if not data:
        return out
    for line in bytes(data).decode().splitlines():
        record = json.loads(line)
        (out.notices if NOTICE_KEY in record else out.dead).append(record)
    return out
