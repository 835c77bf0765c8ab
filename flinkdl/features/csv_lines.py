"""Per-line checks of CSV/TSV text: which lines cannot be one row (a quote not closed on its line, a CR
outside quotes) or hold undecodable bytes. :mod:`flinkdl.features.parse` uses them only when the one-call
``pyarrow.csv`` read does not give one row per line."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from flinkdl.config.schema import DirectoryConfig
from flinkdl.features.deadletter import MALFORMED, UNDECODABLE, DeadLetter

REPLACEMENT = "\ufffd".encode()  # what errors="replace" leaves where bytes were not UTF-8


@lru_cache(maxsize=8)
def closed_line(delimiter: str) -> re.Pattern[bytes]:
    """A csv line whose quotes all close, as ``pyarrow.csv`` reads quotes: a field that starts with
    ``"`` is quoted up to a ``"`` not doubled, the text after the closing quote (up to the delimiter) is
    kept as it is; a ``"`` inside an unquoted field is an ordinary character. No CR outside quotes."""
    d = re.escape(delimiter.encode())
    plain = rb'(?:[^' + d + rb'\r"][^' + d + rb'\r]*)?'
    field = rb'(?:"(?:[^"]|"")*"' + plain + rb'|' + plain + rb')'
    return re.compile(field + rb'(?:' + d + field + rb')*')


def line_problem(line: bytes, cfg: DirectoryConfig) -> str | None:
    """Why one line (without its line ending) cannot be one row; None when it can."""
    if cfg.format == "csv":
        if b'"' not in line and b"\r" not in line:
            return None
        if closed_line(cfg.delimiter).fullmatch(line):
            return None
        return "carriage return outside quotes" if b'"' not in line else "quote not closed on its line"
    return "carriage return inside the line" if b"\r" in line else None


def line_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (LF or CRLF excluded) of each non-blank line of ``data``."""
    a = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(a == 0x0A)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(a)]))
    cr = ends > starts
    cr[cr] = a[ends[cr] - 1] == 0x0D
    ends = ends - cr
    keep = ends > starts
    return starts[keep], ends[keep]


def has_lone_cr(data: bytes) -> bool:
    """A CR that is not part of a line ending (``pyarrow.csv`` would start a new row there)."""
    n = data.count(b"\r")
    return n > 0 and n != data.count(b"\r\n") + data.endswith(b"\r")


def one_row_per_line(data: bytes, rows: int, cfg: DirectoryConfig) -> bool:
    """Whether a ``read_csv`` of ``data`` (no lone CR) that gave ``rows`` rows read one row per line.

    A quote that runs past its line swallows the non-blank lines up to its closing quote, so the rows
    fall short of the lines; only the last line's quote can run to the end of the text unseen."""
    starts, ends = line_spans(data)
    if rows != len(starts):
        return False
    return not len(starts) or line_problem(data[starts[-1]:ends[-1]], cfg) is None


def check_lines(
    data: bytes, cfg: DirectoryConfig, first_position: int, dead: list[DeadLetter]
) -> tuple[bytes, np.ndarray]:
    """Dead-letter the lines holding U+FFFD (``undecodable``) or that cannot be one row (``malformed``).

    Only lines with a quote, a CR or a U+FFFD lead byte are looked at in Python. Returns the text
    without those lines and, for each line left, its data-row index in the input."""
    starts, ends = line_spans(data)
    a = np.frombuffer(data, dtype=np.uint8)
    hit = (a == 0x0D) | (a == REPLACEMENT[0])
    if cfg.format == "csv":
        hit |= a == 0x22
    marks = np.flatnonzero(hit)
    line = np.searchsorted(starts, marks, side="right") - 1
    inside = (line >= 0) & (marks < ends[np.maximum(line, 0)])  # not a line ending's CR
    bad: list[int] = []
    for i in np.unique(line[inside]).tolist():
        text = data[starts[i]:ends[i]]
        if REPLACEMENT in text:
            dead.append(DeadLetter(UNDECODABLE, raw=text.decode("utf-8"), position=first_position + i))
        elif (why := line_problem(text, cfg)) is not None:
            dead.append(DeadLetter(MALFORMED, value=why, raw=text.decode("utf-8"), position=first_position + i))
        else:
            continue
        bad.append(i)
    if not bad:
        return data, np.arange(len(starts), dtype=np.int64)
    pieces, prev = [], 0
    for i in bad:
        pieces.append(data[prev:starts[i]])
        prev = ends[i]  # the line ending stays: the next line starts after it
    pieces.append(data[prev:])
    return b"".join(pieces), np.delete(np.arange(len(starts), dtype=np.int64), bad)
