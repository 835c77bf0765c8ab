"""Append rejected records to a JSON-lines dead-letter file, one object per line.

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO, Self

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
