"""Property test: watched-directory CSV lines with random corruptions lose nothing (see tests/fuzzing.py)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from flinkdl.config.schema import DirectoryConfig
from flinkdl.features.parse import parse_text, split_parsed
from tests.fuzzing import (
    COLUMNS,
    CSV_CORRUPTIONS,
    FEATURES,
    FEATURIZER,
    check,
    corrupt_csv,
    csv_line,
    events,
    expected_features,
)

DIRECTORY = DirectoryConfig(path="in", columns=COLUMNS)


@given(events(), st.data())
def test_file_lines_lose_nothing(evs, data) -> None:
    records: list[tuple[bytes, bool | None, int]] = []  # bytes, must fail (None: intact), eid
    for e in evs:
        line = csv_line(e)
        kind = data.draw(st.none() | st.sampled_from(sorted(CSV_CORRUPTIONS)))
        if kind is None or kind == "duplicate":
            records.append((line.encode(), None, e.eid))
        if kind is not None:
            records.append((corrupt_csv(line, e, kind, data.draw(st.integers(0, 10**6))), CSV_CORRUPTIONS[kind], e.eid))
        if data.draw(st.booleans()):
            records.append((b"", False, -1))  # a blank line: not a record
    crlf = data.draw(st.booleans())
    text = (b"\r\n" if crlf else b"\n").join(r[0] for r in records).decode("utf-8", errors="replace")
    # where each record's lines land (positions count non-blank lines)
    intact, must_fail, pos = {}, set(), 0
    for raw, fail, eid in records:
        for piece in raw.split(b"\n"):
            if not piece.rstrip(b"\r"):
                continue
            if fail is None:
                intact[pos] = eid
            elif fail and b"\n" not in raw:
                must_fail.add(pos)
            pos += 1
    first = data.draw(st.integers(0, 1000))
    raw_batch, dead = parse_text(text, DIRECTORY, FEATURES, first)
    emitted, letters = [], []
    for piece, piece_dead, rows_in, _ in split_parsed(raw_batch, dead, data.draw(st.integers(1, 8)), first):
        feats, more = FEATURIZER.transform(piece)
        assert feats.num_rows + len(piece_dead) + len(more) == rows_in
        emitted.append(feats)
        letters += piece_dead + more
    for d in letters:
        d.position -= first
    check(pos, pa.Table.from_batches(emitted, FEATURIZER.schema), letters, intact, must_fail, expected_features(evs))
