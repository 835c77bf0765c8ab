"""Side tables: join profile columns (users, items) to each raw batch by a key, vectorised.

:class:`Enricher` runs inside the featurize step (:class:`~flinkdl.pipeline.featurize.FeatureMaker`),
before the featurizer: the joined columns are ordinary raw columns. A table is a CSV/TSV file read
whole (every value a string) into memory, and read again when its modification time changes
(checked at most every ``refresh_s``, between batches); or a compacted topic
(:mod:`flinkdl.features.side_topic`). The lookup dictionary-encodes the batch's keys (as text),
finds each distinct key's row in a dict built once per table version (so a batch costs its own
size, not the table's), then ``take`` s each column; a key not found (or missing) gets the
column's configured default, else a missing value. Never raises on
event data; a refresh that fails keeps the last good table (and logs why).

>>> import tempfile, pathlib, pyarrow as pa
>>> from flinkdl.config.enrich import SideTable
>>> p = pathlib.Path(tempfile.mkdtemp()) / "users.tsv"
>>> _ = p.write_text("user\\tage\\tgender\\n1\\t24\\tM\\n2\\t53\\tF\\n")
>>> e = Enricher([SideTable(path=p, key="user", columns=["gender", "age"], default={"gender": "?"})])
>>> e.enrich(pa.record_batch({"user": [2, 7, None, 1]})).to_pydict()
{'user': [2, 7, None, 1], 'gender': ['F', '?', '?', 'M'], 'age': ['53', None, None, '24']}
"""

from __future__ import annotations

import logging
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from flinkdl.config.enrich import SideTable

log = logging.getLogger(__name__)


class LoadedTable:
    """One side table in memory: its keys and columns (strings); subclasses keep them fresh."""

    def __init__(self, cfg: SideTable) -> None:
        self.cfg = cfg
        self.checked = float("-inf")
        self.keys: pa.Array = pa.array([], pa.string())
        self.columns: dict[str, pa.Array] = {}
        self.index: dict[str, int] = {}  #: key → row (the first row of a repeated key)

    def set_rows(self, keys: pa.Array, columns: dict[str, pa.Array]) -> None:
        """Replace the table's rows (``keys`` and ``columns``: strings, one entry per row)."""
        self.keys, self.columns = keys, columns
        self.index = {}
        for i, k in enumerate(keys.to_pylist()):
            self.index.setdefault(k, i)

    def maybe_reload(self, now: float) -> None:
        if self.cfg.refresh_s is not None and now - self.checked >= self.cfg.refresh_s:
            self.checked = now
            self.reload()

    def reload(self) -> None:
        """Take the source's changes (never raises after the first load)."""

    def lookup(self, keys: pa.Array) -> dict[str, pa.Array]:
        """The columns for ``keys`` (any type, compared as text); defaults where a key is not found."""
        if not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
            keys = pc.cast(keys, pa.string())
        enc = pc.dictionary_encode(keys)  # the batch's distinct keys only: no per-batch work on the table
        rows = pa.array([self.index.get(k) for k in enc.dictionary.to_pylist()], pa.int64())
        at = rows.take(enc.indices)  # null where absent (and for a null key)
        out = {}
        for name, col in self.columns.items():
            v = col.take(at)
            default = self.cfg.default.get(name)
            out[name] = v.fill_null(default) if default is not None and v.null_count else v
        return out


def load_table(cfg: SideTable) -> LoadedTable:
    """The side table ``cfg`` read (a file, or a topic from its beginning); raises ``ValueError`` naming it."""
    if cfg.kafka is not None:
        from flinkdl.features.side_topic import TopicTable

        return TopicTable(cfg)
    return FileTable(cfg)


class FileTable(LoadedTable):
    """A CSV/TSV side table, read again when the file's mtime changes."""

    def __init__(self, cfg: SideTable) -> None:
        super().__init__(cfg)
        assert cfg.path is not None
        self.path = cfg.path
        self.mtime_ns = -1
        self.reload(strict=True)

    def read(self) -> tuple[pa.Array, dict[str, pa.Array]]:
        """The file's keys and ``columns``; the first row of a repeated key wins."""
        c = self.cfg
        names = c.names
        if names is None:  # the header names the columns; every value is then read as text
            with open(self.path, encoding="utf-8") as fh:
                names = [n.strip().strip('"') for n in fh.readline().rstrip("\r\n").split(c.delimiter)]
        table = pcsv.read_csv(
            self.path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=0 if c.names else 1, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=c.delimiter, quote_char='"' if c.file_format == "csv" else False),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                strings_can_be_null=False),
        )
        missing = [n for n in (c.key, *c.columns) if n not in table.column_names]
        if missing:
            hint = (f"read as {c.file_format}: set enrich format: csv or tsv, or names: for a file without header"
                    if len(table.column_names) == 1 else
                    "key: names the table's column, on: the event's when they differ" if c.key in missing else
                    "columns: are the table's columns to add")
            raise ValueError(f"side table {self.path}: no column {missing} (has {table.column_names}; {hint})")
        table = table.select([c.key, *c.columns])
        keys = table.column(c.key).combine_chunks()
        return keys, {n: table.column(n).combine_chunks() for n in c.columns}

    def reload(self, strict: bool = False) -> None:
        """Read the file if its mtime changed; ``strict``: a failure raises (at start), else keeps the last table."""
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self.mtime_ns:
                return
            self.set_rows(*self.read())
            self.mtime_ns = mtime
            log.info("side table %s: %d rows", self.path, len(self.keys))
        except (OSError, pa.ArrowException, ValueError) as e:
            if strict:
                raise ValueError(f"enrich: cannot read side table {self.path}: {e}") from e
            log.warning("side table %s: keeping the last good version (%d rows): %s", self.path, len(self.keys), e)


class Enricher:
    """The job's side tables (``enrich``), applied in order to each raw batch."""

    def __init__(self, tables: list[SideTable]) -> None:
        self.tables = [load_table(t) for t in tables]

    def enrich(self, raw: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
        """``raw`` with every side table's columns appended (a batch without the key column: all default)."""
        now = time.monotonic()
        for t in self.tables:
            t.maybe_reload(now)
            on = t.cfg.event_column
            col = raw.column(on) if on in raw.schema.names else pa.nulls(raw.num_rows, pa.string())
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            for name, values in t.lookup(col).items():
                if name in raw.schema.names:
                    raw = raw.drop_columns([name]) if isinstance(raw, pa.Table) else _drop(raw, name)
                raw = raw.append_column(name, values)
        return raw


def _drop(batch: pa.RecordBatch, name: str) -> pa.RecordBatch:
    i = batch.schema.get_field_index(name)
    return pa.RecordBatch.from_arrays([c for k, c in enumerate(batch.columns) if k != i],
                                      names=[n for k, n in enumerate(batch.schema.names) if k != i])
