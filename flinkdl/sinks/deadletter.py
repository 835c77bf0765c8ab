"""Dead letters out: a JSON-lines file (one object per line), counts, and Kafka dead-letter messages.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "dead_letter.jsonl"
>>> with DeadLetterWriter(path) as dl:
...     dl.write(['{"reason": "bad_label", "line": "x,1"}', {"reason": "parse"}, "not json"])
3
>>> print(path.read_text(), end="")
{"reason": "bad_label", "line": "x,1"}
{"reason": "parse"}
{"message": "not json"}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO, Self

from flinkdl.exchange.letters import decode_letters
from flinkdl.sinks.predictions import open_append


def _line(item: object) -> str:
    """One JSON line for an item: a JSON string (kept), anything with ``to_json()``, or a mapping."""
    if hasattr(item, "to_json"):
        item = item.to_json()
    if isinstance(item, str):
        text = item.strip()
        try:
            json.loads(text)
            if "\n" not in text:
                return text + "\n"
        except ValueError:
            pass
        item = {"message": item}  # plain text, or JSON spread over lines: wrap it
    if isinstance(item, Mapping):
        return json.dumps(item, ensure_ascii=False, default=str) + "\n"
    raise TypeError(f"dead letter must be a str, a mapping or have to_json(), got {type(item).__name__}")


class DeadLetterWriter:
    """Appends dead letters to ``path``; the file (and its parents) is created on the first item.

    Each :meth:`write` flushes, so letters are on disk when it returns; a torn last line left by
    a crash is cut off when the file is reopened.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0  # written by this writer
        self._file: BinaryIO | None = None
        self._closed = False

    def write(self, items: Iterable[object]) -> int:
        """Append every item as one JSON line; returns how many were written."""
        if self._closed:
            raise ValueError(f"DeadLetterWriter({self.path}) is closed")
        lines = [_line(x) for x in items]
        if not lines:
            return 0
        if self._file is None:
            self._file = open_append(self.path)
        self._file.write("".join(lines).encode("utf-8"))
        self._file.flush()
        self.count += len(lines)
        return len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._closed = None, True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DeadLetterLog:
    """A run's dead letters: appended to a file and counted by reason; schema-drift notices
    (:class:`~flinkdl.features.deadletter.Notice`) are counted by column, not written."""

    def __init__(self, path: str | Path) -> None:
        self.writer = DeadLetterWriter(path)
        self.by_reason: Counter[str] = Counter()
        self.drift: Counter[str] = Counter()  #: rows that carried an unknown column, by column

    @property
    def count(self) -> int:
        return self.writer.count

    def add(self, data: bytes) -> tuple[Counter[str], Counter[str]]:
        """An envelope's ``dead_letters`` (:mod:`flinkdl.exchange.letters`) → written; returns this
        batch's (reasons, drift) counts."""
        if not data:
            return Counter(), Counter()
        letters = decode_letters(data)
        self.writer.write(letters.dead)
        reasons = Counter(d.get("reason", "unknown") for d in letters.dead)
        drift: Counter[str] = Counter()
        for n in letters.notices:
            drift[n["field"]] += n["rows"]
        self.by_reason.update(reasons)
        self.drift.update(drift)
        return reasons, drift

    def close(self) -> None:
        self.writer.close()


def kafka_message(d: dict) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A dead letter (``DeadLetter.to_dict``) → a dead-letter topic message: (value, headers).

    Value: the raw record (for binary ones the base64 text, with header ``raw-encoding: base64``);
    headers ``reason``, ``field``, ``value``, ``position`` where set (and ``raw-bytes`` when cut).
    """
    headers = [(k, str(d[k]).encode()) for k in ("reason", "field", "value", "position") if d.get(k) is not None]
    if d.get("raw_encoding") or d.get("reason") == "corrupt_arrow":
        headers.append(("raw-encoding", (d.get("raw_encoding") or "base64").encode()))
    if d.get("raw_bytes") is not None:
        headers.append(("raw-bytes", str(d["raw_bytes"]).encode()))
    return (d.get("raw") or "").encode(), headers
