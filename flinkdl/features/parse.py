"""CSV/TSV text → a raw Arrow batch of string columns, plus dead letters.

The whole text is parsed by ``pyarrow.csv`` in one call with every column read as a string
(no type inference: typing is the featurizer's job, so a bad value costs one row, not the batch).

One row is one line, always: lines end at LF (or CRLF), and a quoted value may hold the
delimiter or a CR but never runs past the end of its line. A line whose quote does not close,
or with a CR outside quotes, is one ``malformed`` dead letter; the lines after it go on.
The text is read in one ``pyarrow.csv`` call; only when that call's rows do not match the lines
(or the text holds a lone CR or undecodable bytes) are the lines checked one by one.

Positions: the ``k``-th data row of ``text`` has position ``first_position + k``, counting every
non-empty, non-header line (so rejected lines use up positions too, and the positions of the
good rows say where they were). They travel in the :data:`POSITION_COLUMN` of the batch;
:meth:`flinkdl.features.transform.Featurizer.transform` uses it for dead letters and, when the
config has no event id column, as the event id.

>>> from flinkdl.config.schema import DirectoryConfig, FeatureConfig
>>> d = DirectoryConfig(path="in", columns=["label", "n"], header=True)
>>> batch, dls = parse_text("label,n\\n1,2\\n0\\n0,5", d, FeatureConfig(event_id=None, numeric=["n"]))
>>> batch.to_pydict()
{'label': ['1', '0'], 'n': ['2', '5'], '__position__': [0, 2]}
>>> [(x.reason, x.raw, x.position) for x in dls]
[('field_count', '0', 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from flinkdl.config.schema import DirectoryConfig, FeatureConfig
from flinkdl.features.csv_lines import REPLACEMENT, check_lines, has_lone_cr, one_row_per_line
from flinkdl.features.deadletter import FIELD_COUNT, DeadLetter, Notice

POSITION_COLUMN = "__position__"  #: int64 column added to every parsed batch
L = TypeVar("L", bound=DeadLetter | Notice)  #: a dead letter, or a letter of a Kafka chunk


def parse_text(
    text: str,
    cfg: DirectoryConfig,
    features: FeatureConfig,
    first_position: int = 0,
    *,
    pad_short_rows: bool = False,
) -> tuple[pa.RecordBatch, list[DeadLetter]]:
    """Parse newline-joined CSV/TSV lines (see the module doc for positions).

    Skips header lines (lines equal to the delimiter-joined ``cfg.columns``) when ``cfg.header``,
    and blank lines. Dead letters: ``undecodable`` for lines containing U+FFFD, ``field_count``
    for lines with the wrong number of fields (``raw`` = the line).

    ``pad_short_rows``: a line with too FEW fields is taken as having empty trailing fields
    (tools that strip trailing whitespace drop trailing empty TSV fields, e.g. half the rows
    of the Criteo ``dac_format_1k_train.txt`` sample). Off by default: strict field counts.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: treat like undecodable bytes
        data = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")
    return _parse_utf8(data, cfg, features, first_position, pad_short_rows)


def parse_bytes(
    data: bytes,
    cfg: DirectoryConfig,
    features: FeatureConfig,
    first_position: int = 0,
    *,
    pad_short_rows: bool = False,
) -> tuple[pa.RecordBatch, list[DeadLetter]]:
    """Like :func:`parse_text` for raw file bytes: invalid UTF-8 becomes U+FFFD, so those lines
    are dead-lettered as ``undecodable`` instead of failing the batch."""
    try:
        data.decode("utf-8")  # valid (the common case): parse the bytes as they are
    except UnicodeDecodeError:
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    return _parse_utf8(data, cfg, features, first_position, pad_short_rows)


def _check_columns(cfg: DirectoryConfig, features: FeatureConfig) -> None:
    if POSITION_COLUMN in cfg.columns:
        raise ValueError(f"source.directory.columns: {POSITION_COLUMN!r} is reserved")
    need = [
        features.label.column,
        *(c.name for c in features.categorical),
        *(n.name for n in features.numeric),
    ]
    if features.event_id is not None:
        need.append(features.event_id)
    missing = [c for c in need if c not in cfg.columns]
    if missing:
        raise ValueError(
            f"features use columns {missing} that are not in source.directory.columns {cfg.columns}"
        )


def _strip_headers(data: bytes, cfg: DirectoryConfig) -> bytes:
    """Remove every line equal to the header (``bytes.find`` scan; a regex was ~100x slower)."""
    header = cfg.delimiter.join(cfg.columns).encode("utf-8")
    pieces, start, pos = [], 0, data.find(header)
    while pos != -1:
        end = pos + len(header)
        if end < len(data) and data[end] == 0x0D:  # \r\n line ending
            end += 1
        if (pos == 0 or data[pos - 1] == 0x0A) and (end == len(data) or data[end] == 0x0A):
            pieces.append(data[start:pos])
            start = end + 1
        pos = data.find(header, end)
    if not pieces:
        return data
    pieces.append(data[start:])
    return b"".join(pieces)


def _parse_utf8(
    data: bytes, cfg: DirectoryConfig, features: FeatureConfig, first_position: int, pad_short_rows: bool
) -> tuple[pa.RecordBatch, list[DeadLetter]]:
    _check_columns(cfg, features)
    dead: list[DeadLetter] = []
    if cfg.header:
        data = _strip_headers(data, cfg)
    row_index: np.ndarray | None = None  # remaining row → data-row index; None = identity
    # memchr first (find of one byte): the common clean text pays a few scans, not a line split
    undecodable = data.find(REPLACEMENT[:1]) != -1 and REPLACEMENT in data
    table = None
    if not undecodable and not has_lone_cr(data):
        table, good, invalid = _read_rows(data, cfg)
        if cfg.format == "csv" and b'"' in data and not one_row_per_line(data, len(good) + len(invalid), cfg):
            table = None  # a quote ran past its line
    if table is None:
        data, row_index = check_lines(data, cfg, first_position, dead)
        table, good, invalid = _read_rows(data, cfg)
        if len(good) + len(invalid) != len(row_index):  # cannot happen once the lines are checked
            raise AssertionError(f"{len(row_index)} checked lines read as {len(good) + len(invalid)} rows")
    if pad_short_rows and any(got < want for _, _, got, want in invalid):
        short = [r for r in invalid if r[2] < r[3]]
        invalid = [r for r in invalid if r[2] >= r[3]]
        delim = cfg.delimiter.encode()
        padded = b"\n".join(text.encode() + delim * (want - got) for _, text, got, want in short)
        t2, good2, invalid2 = _read_rows(padded, cfg)
        short_idx = np.asarray([r[0] for r in short], dtype=np.int64)
        invalid = sorted(invalid + [short[i] for i, *_ in invalid2])
        good = np.concatenate([good, short_idx[good2]])
        order = np.argsort(good, kind="stable")
        table, good = pa.concat_tables([table, t2]).take(order), good[order]

    bad = np.asarray([i for i, *_ in invalid], dtype=np.int64)
    if row_index is not None:
        good, bad = row_index[good], row_index[bad]
    for (_, text, got, want), b in zip(invalid, bad.tolist(), strict=True):
        dead.append(
            DeadLetter(
                FIELD_COUNT, value=f"{got} fields, expected {want}", raw=text, position=first_position + b
            )
        )
    if row_index is not None:
        dead.sort(key=lambda d: d.position if d.position is not None else -1)

    columns = [_one_chunk(table.column(i)) for i in range(table.num_columns)]
    columns.append(pa.array(good + first_position, type=pa.int64()))
    return pa.RecordBatch.from_arrays(columns, names=[*cfg.columns, POSITION_COLUMN]), dead


def _read_rows(
    data: bytes, cfg: DirectoryConfig
) -> tuple[pa.Table, np.ndarray, list[tuple[int, str, int, int]]]:
    """One ``read_csv`` call, all columns as strings. Returns the table, the row index (in
    ``data``, blank lines not counted) of each of its rows, and the skipped rows as
    ``(row index, text, fields found, fields expected)``."""
    invalid: list[tuple[int, str, int, int]] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        invalid.append((row.number - 1, row.text, row.actual_columns, row.expected_columns))
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(
                column_names=cfg.columns,
                use_threads=False,  # one core per subtask; also keeps InvalidRow.number exact
                block_size=max(1 << 20, len(data) + 1),  # one block → one chunk per column
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=cfg.delimiter,
                quote_char='"' if cfg.format == "csv" else False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in cfg.columns}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as e:
        if not str(e).startswith("Empty CSV file"):
            raise
        table = pa.table({c: pa.array([], pa.string()) for c in cfg.columns})  # only blank lines
    bad = [i for i, *_ in invalid]
    good = np.arange(table.num_rows + len(bad), dtype=np.int64)
    return table, (np.delete(good, bad) if bad else good), invalid


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    if col.num_chunks == 1:
        return col.chunk(0)
    return col.combine_chunks() if col.num_chunks else pa.array([], type=col.type)


def split_parsed(
    raw: pa.RecordBatch, dead: Sequence[L], max_rows: int, first_position: int = 0
) -> list[tuple[pa.RecordBatch, list[L], int, int]]:
    """Cut one parsed chunk (:func:`parse_text`'s result, or a decoded Kafka chunk with its dead
    letters and notices) into pieces of at most ``max_rows`` good rows.

    Returns ``(raw slice, its letters, rows_in, first position)`` per piece, in stream order
    (``rows_in`` counts the good rows and the :class:`DeadLetter` s, not notices). Piece ``k``
    covers the positions from its first good row up to (not including) the next piece's first
    good row; the first piece starts at ``first_position``, the last runs to the chunk's end. A
    letter goes with the piece whose range holds its position (none: the last), so the
    pieces' ``rows_in`` (good rows + their dead letters) add up to the chunk's and positions
    never go back from one piece to the next. Slices are zero-copy. A chunk with at most
    ``max_rows`` good rows (also one with none) is one piece.

    >>> from flinkdl.config.schema import DirectoryConfig, FeatureConfig
    >>> d = DirectoryConfig(path="in", columns=["label", "n"])
    >>> raw, dls = parse_text("1,2\\n0\\n0,5\\n1,1\\nx", d, FeatureConfig(event_id=None, numeric=["n"]), 10)
    >>> [(r.column(POSITION_COLUMN).to_pylist(), [x.position for x in ds], n, p)
    ...  for r, ds, n, p in split_parsed(raw, dls, 2, 10)]
    [([10, 12], [11], 3, 10), ([13], [14], 2, 13)]
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    n = raw.num_rows
    if n <= max_rows:
        return [(raw, list(dead), n + _n_dead(dead), first_position)]
    pos = raw.column(POSITION_COLUMN).to_numpy(zero_copy_only=False)
    starts = list(range(0, n, max_rows))
    # piece k takes the dead letters with position < the first good position of piece k + 1
    bounds = [int(pos[s]) for s in starts[1:]]
    by_piece: list[list[L]] = [[] for _ in starts]
    for d in dead:
        k = len(bounds) if d.position is None else int(np.searchsorted(bounds, d.position, side="right"))
        by_piece[k].append(d)
    out = []
    for k, s in enumerate(starts):
        piece, ds = raw.slice(s, max_rows), by_piece[k]
        out.append((piece, ds, piece.num_rows + _n_dead(ds), first_position if k == 0 else int(pos[s])))
    return out


def _n_dead(letters: Sequence[DeadLetter | Notice]) -> int:
    return sum(isinstance(x, DeadLetter) for x in letters)
