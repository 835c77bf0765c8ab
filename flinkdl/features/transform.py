"""Raw batch → feature batch (:mod:`flinkdl.exchange.schema`), vectorised, with dead letters.

Raw columns may be typed (the generator: int64 ``C*``, float64 ``I*`` with nulls, int64
``label``/``event_id``) or strings (:mod:`flinkdl.features.parse`). Strings are cast in one
``pyarrow.compute.cast`` per column; only when that fails is the column searched (by bisection,
so a single bad value costs ~2·log2(n) small casts) for the rows that do not parse. Those rows
become dead letters and are dropped; all other rows go on. An ``int`` categorical hashes the
int64 value, so ``123`` from the generator and ``"123"`` from a file give the same id.

An event without a label (null, ``""``, or no label column value) is kept with label NaN, the
"has no label" flag of the feature batch (:func:`~flinkdl.exchange.schema.labelled`): the worker
scores it and does not train on it. A label that is present but invalid is a dead letter.

Missing values: null, and ``""`` in a string column. A missing categorical hashes as
:func:`~flinkdl.features.hashing.null_hash` of its field seed; a missing numeric becomes value 0
with indicator 1. A row is dead-lettered once, for the first problem found, checking the event
id, then the label (if present), then categoricals and numerics in config order.

>>> import pyarrow as pa
>>> from flinkdl.config.schema import FeatureConfig
>>> f = Featurizer(FeatureConfig(event_id=None, categorical=["c"], numeric=["n"]))
>>> raw = pa.record_batch({"label": ["1", "0", "x", ""], "c": ["a", "", "b", "c"], "n": ["0", "", "1", "2"]})
>>> batch, dead = f.transform(raw, position_offset=100)
>>> batch.column_names, batch.column("event_id").to_pylist(), batch.column("x_1").to_pylist()
(['event_id', 'label', 'id_0', 'x_0', 'x_1'], [100, 101, 103], [0.0, 1.0, 0.0])
>>> batch.column("label").to_pylist()  # the unlabelled event is kept, its label NaN
[1.0, 0.0, nan]
>>> [(d.reason, d.field, d.value, d.raw, d.position) for d in dead]
[('label_invalid', 'label', 'x', 'x,b,1', 102)]
>>> f.featurize(raw, position_offset=100).keep.tolist()  # which raw rows became feature rows
[True, True, False, True]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.config.schema import FeatureConfig
from flinkdl.exchange.schema import feature_schema
from flinkdl.features import deadletter as dl
from flinkdl.features.bags import bag_ids
from flinkdl.features.hashing import bucketize, cross, field_seed, hash_strings, murmur3_32_int64, null_hash
from flinkdl.features.parse import POSITION_COLUMN
from flinkdl.features.rows import Rows, arrow_view, null_mask, zero_filled


class Featurized(NamedTuple):
    """What :meth:`Featurizer.featurize` makes of a raw batch."""

    batch: pa.RecordBatch  #: the feature batch: the good rows, in order
    dead: list[dl.DeadLetter]  #: one per rejected row, in row order
    keep: np.ndarray  #: bool per raw row: whether it became a row of ``batch``


class Featurizer:
    """Turns raw batches into feature batches with schema ``feature_schema(cfg)``.

    ``delimiter`` is only used to render a rejected row into ``DeadLetter.raw``.
    """

    def __init__(self, cfg: FeatureConfig, delimiter: str = ",") -> None:
        self.cfg = cfg
        self.delimiter = delimiter
        self.schema = feature_schema(cfg)
        singles = cfg.singles
        names = [c.name for c in singles]
        self._seeds = np.array([field_seed(cfg.hash_seed, n) for n in names], dtype=np.uint32)
        self._null = np.array([null_hash(int(s)) for s in self._seeds], dtype=np.uint32)
        self._int_fields = [i for i, c in enumerate(singles) if c.type == "int"]
        self._str_fields = [i for i, c in enumerate(singles) if c.type == "string"]
        self._crosses = [
            (names.index(a), names.index(b), field_seed(cfg.hash_seed, f"{a}#{b}")) for a, b in cfg.crosses
        ]

    # ------------------------------------------------------------------ public

    def transform(
        self, raw: pa.RecordBatch | pa.Table, position_offset: int = 0
    ) -> tuple[pa.RecordBatch, list[dl.DeadLetter]]:
        """Featurize ``raw``; returns the feature batch (good rows, in order) and dead letters."""
        out = self.featurize(raw, position_offset)
        return out.batch, out.dead

    def int_seed(self, name: str) -> int | None:
        """The hash seed of single-valued int field ``name`` (None: no such field)."""
        names = [c.name for c in self.cfg.singles]
        i = names.index(name) if name in names else -1
        return int(self._seeds[i]) if i in self._int_fields else None

    def featurize(self, raw: pa.RecordBatch | pa.Table, position_offset: int = 0,
                  hashed: Mapping[str, np.ndarray] | None = None) -> Featurized:
        """Featurize ``raw``: the feature batch, dead letters and the keep-mask of the raw rows.

        ``hashed``: int field → its column's hashes, already known to the caller (no nulls; each
        equal to ``murmur3_32_int64(value, int_seed(field))``): those columns are not read.

        Positions (event id when ``cfg.event_id`` is None, and ``DeadLetter.position``) come from
        the :data:`~flinkdl.features.parse.POSITION_COLUMN` when ``raw`` has one (then
        ``position_offset`` is ignored), else are ``position_offset + row index``.
        """
        cfg, n = self.cfg, raw.num_rows
        rows = Rows(raw, cfg.max_field_bytes)
        if POSITION_COLUMN in raw.schema.names:
            positions = rows.column(POSITION_COLUMN).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            positions = np.arange(position_offset, position_offset + n, dtype=np.int64)

        if cfg.event_id is None:
            event_id = positions
        else:
            ev = rows.id64(cfg.event_id, dl.BAD_ID)
            if ev.null_count:
                rows.reject(np.flatnonzero(pc.is_null(ev).to_numpy(zero_copy_only=False)), dl.MISSING_ID, cfg.event_id)
            event_id = ev.fill_null(0).to_numpy()

        label = self._label(rows)
        ids = self._ids(rows, n, hashed or {})
        dense = self._dense(rows, n)

        dead = [
            dl.DeadLetter(reason, field, value, rows.render(r, self.delimiter), int(positions[r]))
            for r, reason, field, value in sorted(rows.rejects)
        ]
        columns = [event_id, label, *ids, *dense]
        keep = ~rows.bad
        if rows.bad.any():
            columns = [c[keep] for c in columns]
        arrays = [arrow_view(c, f.type) for c, f in zip(columns, self.schema, strict=True)]
        return Featurized(pa.RecordBatch.from_arrays(arrays, schema=self.schema), dead, keep)

    # ------------------------------------------------------------------ fields

    def _label(self, rows: Rows) -> np.ndarray:
        name, threshold = self.cfg.label.column, self.cfg.label.threshold
        y = rows.cast(name, pa.float64(), dl.LABEL_INVALID)
        missing = null_mask(y)
        y = zero_filled(y, missing)
        invalid = np.isnan(y)
        with np.errstate(invalid="ignore"):
            if threshold is not None:
                y = (y >= threshold).astype(np.float32)
            else:
                out_of_range = (y != 0) & (y != 1) & ~invalid
                if out_of_range.any():
                    rows.reject(np.flatnonzero(out_of_range & ~missing), dl.LABEL_OUT_OF_RANGE, name)
        rows.reject(np.flatnonzero(invalid & ~missing), dl.LABEL_INVALID, name)
        y = y.astype(np.float32)
        y[missing] = np.nan  # no label: the row is scored, not trained on (exchange.schema.labelled)
        return y

    def _ids(self, rows: Rows, n: int, hashed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        cats = self.cfg.singles
        h = np.empty((len(cats), n), dtype=np.uint32)
        for i in self._int_fields:
            if cats[i].name in hashed:
                h[i] = hashed[cats[i].name]
        read = [i for i in self._int_fields if cats[i].name not in hashed]
        if read:
            values = np.empty((len(read), n), dtype=np.int64)
            nulls = np.zeros_like(values, dtype=bool)
            for r, i in enumerate(read):
                v = rows.id64(cats[i].name, dl.BAD_ID)
                if v.null_count:
                    nulls[r] = null_mask(v)
                    v = v.fill_null(0)
                values[r] = v.to_numpy()
            fi = np.array(read)
            mm = murmur3_32_int64(values, self._seeds[fi, None])  # all int fields in one pass
            h[fi] = np.where(nulls, self._null[fi, None], mm)
        for i in self._str_fields:
            h[i] = hash_strings(rows.text(cats[i].name), int(self._seeds[i]))
        crossed = [cross(h[a], h[b], seed) for a, b, seed in self._crosses]
        bits = self.cfg.hash_bits
        return [*bucketize(h, bits), *(bucketize(c, bits) for c in crossed), *self._bags(rows)]

    def _bags(self, rows: Rows) -> list[np.ndarray]:
        """``max_len`` id columns per multi-valued field (:mod:`flinkdl.features.bags`)."""
        out: list[np.ndarray] = []
        for f in self.cfg.bags:
            assert f.multi is not None
            seed = field_seed(self.cfg.hash_seed, f.name)
            ids, bad = bag_ids(rows.text(f.name), f.multi, f.type == "int", seed, self.cfg.hash_bits)
            rows.reject(np.array([r for r, _ in bad], np.int64), dl.BAD_LIST, f.name, [why for _, why in bad])
            out += list(ids)
        return out

    def _dense(self, rows: Rows, n: int) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for f in self.cfg.numeric:
            v = rows.cast(f.name, pa.float64(), dl.NOT_NUMERIC)
            missing = null_mask(v)
            x = zero_filled(v, missing)
            finite = np.isfinite(x)
            if not finite.all():
                rows.reject(np.flatnonzero(~finite), dl.NOT_FINITE, f.name)
                x = np.where(finite, x, 0.0)
            if f.transform == "log1p":  # no negatives: the same bits (+ 0.0: -0.0 becomes 0.0, as sign(-0.0) is 0.0)
                if len(x) and x.min() >= 0.0:
                    x = np.log1p(x)
                    x += 0.0  # in place: one array less per column
                else:
                    x = np.sign(x) * np.log1p(np.abs(x))
            out += [x.astype(np.float32), missing.astype(np.float32)]
        return out
