"""A deterministic, seeded, vectorised Criteo-like click stream.

Columns of :meth:`ClickStream.batch` (see :data:`SCHEMA`): ``event_id`` int64 (global index),
``ts`` int64 (ms), ``label`` int64 (0/1), ``C1..C26`` int64 IDs, ``I1..I13`` float64 counts with
nulls, and with ``with_truth=True`` also ``p_true`` float64, the hidden click probability.

Every event draws its ``K`` uniforms from one PCG64 stream at position ``event_id * K``
(``PCG64.advance``), so an event is a pure function of ``(seed, event_id)``: any batch, in any
order, in any process, with any batch size, holds the same bytes for the same events.

Hidden model (logit): intercept (CTR ~25 %) + per-ID normal effects for 19 of the 26 fields
+ effects of ``log1p(I)`` (linear, one bump, two missing indicators) + three centred low-rank
crosses ``<u_A[a], v_B[b]>`` (invisible to a plain LR). At ``drift_at`` the IDs of five fields
(all of C6, C14, half of C3, C10, C25) and the cross C5 x C22 are re-drawn and CTR rises.
IDs are Zipf-like (bounded power law, exponents 1.05-1.3, vocabularies 3..300k), sampled by the
closed-form inverse CDF (O(1) per draw; a CDF ``searchsorted`` was ~10x slower) and mapped
through a seeded permutation of ``[0, 2**20)`` (odd multiply, xor), so frequent IDs are
scattered: field ``Ck`` holds IDs ``k * 10**7 + ((rank * mult) & (2**20 - 1)) ^ key``. The per-ID
float32 weight and latent tables take ~6 MB per instance (``nbytes``); ``batch`` only reads them, so it is thread-safe.
The stream is the default member of a family (``family``, :mod:`flinkdl.sources.family`:
vocabulary sizes, crosses, multi-valued fields ``M1..Mn`` after the ``I`` columns, drift kind
and strength). Bytes are identical across processes and runs with the same numpy build (float ``exp``/``log``
may differ in the last ulp across CPUs/builds, which flips a label or ID only vanishingly rarely).

>>> s = ClickStream(seed=1)
>>> b = s.batch(2, 4)
>>> b.column("event_id").to_pylist(), b.num_columns
([8, 9, 10, 11], 42)
>>> s.batch(0, 12).slice(8).equals(b)  # same events whatever the batch size
True
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flinkdl.config.generator_family import FamilyConfig
from flinkdl.config.schema import GeneratorConfig
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.features.rows import arrow_view as _arrow
from flinkdl.sources.family import MultiValued, after_mask, extra_cross_pairs, extra_uniforms

N_CAT, N_NUM = 26, 13
K = 40  # uniforms per event: 26 categorical, 13 numeric (missingness folded in), 1 label
ID_MASK = (1 << 20) - 1  # IDs of field Ck: k * 10**7 + a seeded permutation of [0, 2**20)

# fmt: off
#: (vocabulary, zipf exponent, effect std, fraction of IDs re-drawn at the drift) per C field
FIELDS: list[tuple[int, float, float, float]] = [
    (1460, 1.10, 0.30, 0.0), (583, 1.15, 0.30, 0.0), (300_000, 1.05, 0.25, 0.5),
    (200_000, 1.08, 0.20, 0.0), (305, 1.20, 0.30, 0.0), (24, 1.30, 0.50, 1.0),
    (12_517, 1.12, 0.25, 0.0), (633, 1.15, 0.30, 0.0), (3, 1.25, 0.20, 0.0),
    (93_145, 1.08, 0.25, 0.5), (5683, 1.12, 0.30, 0.0), (250_000, 1.05, 0.0, 0.0),
    (3194, 1.15, 0.20, 0.0), (27, 1.25, 0.30, 1.0), (14_992, 1.10, 0.0, 0.0),
    (180_000, 1.06, 0.20, 0.0), (10, 1.30, 0.20, 0.0), (5652, 1.12, 0.0, 0.0),
    (2173, 1.15, 0.30, 0.0), (4, 1.20, 0.0, 0.0), (220_000, 1.05, 0.0, 0.0),
    (18, 1.25, 0.20, 0.0), (15, 1.25, 0.0, 0.0), (143_000, 1.07, 0.20, 0.0),
    (105, 1.20, 0.30, 0.5), (100_000, 1.06, 0.0, 0.0),
]
#: (pareto alpha, scale, missing rate, linear effect per unit of log1p(x)) per I field
NUMS: list[tuple[float, float, float, float]] = [
    (1.6, 3.0, 0.00, 0.15), (1.3, 40.0, 0.05, 0.0), (2.0, 10.0, 0.40, -0.10), (1.8, 6.0, 0.20, 0.0),
    (1.4, 8000.0, 0.02, 0.0), (1.5, 60.0, 0.22, 0.10), (2.2, 8.0, 0.04, -0.20), (2.5, 12.0, 0.00, 0.0),
    (1.7, 80.0, 0.04, 0.0), (3.0, 1.0, 0.40, 0.20), (2.4, 2.0, 0.04, 0.0), (2.0, 1.5, 0.35, 0.0),
    (1.9, 7.0, 0.20, 0.05),
]
# fmt: on
BUMP = (4, 7.5, 1.2, 0.9)  # field I5: amplitude * exp(-((log1p(x) - centre) / width)**2) ...
MISSING_EFFECT = {2: -0.4, 11: 0.3}  # ... and effects of I3 / I12 being missing
#: low-rank crosses: (field A, field B, rank, std of each latent component); index 1 drifts
CROSSES: list[tuple[int, int, int, float]] = [(5, 24, 3, 0.65), (4, 21, 2, 0.7), (1, 13, 3, 0.6)]
DRIFT_CROSS = 1
INTERCEPT, DRIFT_SHIFT = -1.95, 0.2

SCHEMA = pa.schema(
    [("event_id", pa.int64()), ("ts", pa.int64()), ("label", pa.int64())]
    + [(f"C{i}", pa.int64()) for i in range(1, N_CAT + 1)]
    + [(f"I{i}", pa.float64()) for i in range(1, N_NUM + 1)]
)
TRUTH_SCHEMA = SCHEMA.append(pa.field("p_true", pa.float64()))


def _zipf_probs(vocab: int, s: float) -> np.ndarray:
    """P(rank r) of the bounded power law sampled in :meth:`ClickStream._ranks`."""
    edges = np.arange(1, vocab + 2, dtype=np.float64) ** (1.0 - s)
    return np.diff(edges) / (edges[-1] - 1.0)


def _normalise(z: np.ndarray, p: np.ndarray, std: float) -> np.ndarray:
    """Centre and scale ``z`` (per column) under the ID distribution ``p``: a main effect of 0."""
    z = z - p @ z
    return (z * (std / np.sqrt(p @ (z * z)))).astype(np.float32)


class ClickStream:
    """Seeded Criteo-like click events; see the module docstring. ``seed`` must be >= 0."""

    def __init__(
        self,
        seed: int = 7,
        drift_at: int = 500_000,
        start_ts_ms: int = 1_700_000_000_000,
        events_per_s: float = 1000.0,
        family: FamilyConfig | None = None,
    ) -> None:
        if seed < 0 or drift_at < 0 or events_per_s <= 0:
            raise ValueError("need seed >= 0, drift_at >= 0, events_per_s > 0")
        self.seed, self.drift_at = seed, drift_at
        self.family = fam = family or FamilyConfig()
        fam_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFA1111]))  # the member's own draws
        self._k2 = extra_uniforms(fam)
        self._state2 = np.random.PCG64(np.random.SeedSequence([seed, 0xFA2222])).state
        vocabs = [v if fam.vocab_scale == 1.0 else min(ID_MASK + 1, max(2, round(v * fam.vocab_scale)))
                  for v, *_ in FIELDS]
        self.start_ts_ms, self.events_per_s = start_ts_ms, events_per_s
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7AB1E5]))
        self._state = np.random.PCG64(np.random.SeedSequence([seed, 0xE7E27])).state
        self._idmap: list[tuple[int, int, int]] = []  # (offset, odd multiplier, xor key)
        self._w: list[tuple[np.ndarray, np.ndarray] | None] = []  # (before, after) drift; None: no weight
        self._zipf: list[tuple[float, float, int]] = []  # (a, 1/(1-s), vocab) for the inverse CDF
        probs = []
        for f, (_, s, std, frac) in enumerate(FIELDS):
            vocab, frac = vocabs[f], min(1.0, frac * fam.drift_strength)
            mult, key = 2 * int(rng.integers(1 << 18, 1 << 19)) + 1, int(rng.integers(ID_MASK + 1))
            self._idmap.append(((f + 1) * 10_000_000, mult, key))
            self._zipf.append(((vocab + 1.0) ** (1.0 - s) - 1.0, 1.0 / (1.0 - s), vocab))
            probs.append(p := _zipf_probs(vocab, s))
            if std == 0.0:
                self._w.append(None)
                continue
            z = rng.standard_normal(vocab)
            w0 = _normalise(z, p, std)
            if frac > 0.0:
                z = np.where(rng.random(vocab) < frac, rng.standard_normal(vocab), z)
                self._w.append((w0, _normalise(z, p, std)))
            else:
                self._w.append((w0, w0))

        def latent(g: int, rank: int, std: float, gen: np.random.Generator) -> list[np.ndarray]:
            """Centred latent vectors of field ``g``: one contiguous float32 row per component."""
            z = _normalise(gen.standard_normal((vocabs[g], rank)), probs[g], std * fam.cross_strength)
            return list(np.ascontiguousarray(z.T))

        extra = [(a, b, 2, 0.6) for a, b in extra_cross_pairs(max(0, fam.crosses - len(CROSSES)), vocabs, fam_rng)]
        self.crosses = CROSSES[:fam.crosses] + extra
        self._cross: list[tuple[list[np.ndarray], ...]] = []  # (u, v) before and after the drift
        for c, (a, b, rank, std) in enumerate(self.crosses):
            gen = rng if c < len(CROSSES) else fam_rng
            u, v, u1, v1 = (latent(g, rank, std, gen) for g in (a, b, a, b))
            self._cross.append((u, v, u1, v1) if c == DRIFT_CROSS else (u, v, u, v))
        self.multi = MultiValued(fam, fam_rng, N_CAT + 1)
        self.schema = SCHEMA if not fam.multi_valued else pa.schema(
            [*SCHEMA, *(pa.field(m, pa.string()) for m in self.multi.names)])

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> ClickStream:
        return cls(cfg.seed, cfg.drift_at, cfg.start_ts_ms, cfg.events_per_s, cfg.family)

    @property
    def nbytes(self) -> int:
        """Bytes held by the hidden per-ID tables (float32 weights and latent vectors)."""
        arrays = {id(a): a for pair in self._w if pair is not None for a in pair}
        arrays.update({id(a): a for quad in self._cross for rows in quad for a in rows})
        return sum(a.nbytes for a in arrays.values())

    def _ranks(self, f: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zipf ranks (inverse CDF; ``exp(log)`` is a faster ``pow``) and the IDs they map to."""
        a, inv, vocab = self._zipf[f]
        r = np.minimum(np.exp(inv * np.log1p(u * a)).astype(np.int64) - 1, vocab - 1)
        return r, self._id_of(f, r)

    def _id_of(self, f: int, r: np.ndarray) -> np.ndarray:
        offset, mult, key = self._idmap[f]
        return (((r * mult) & ID_MASK) ^ key) + offset  # a bijection of [0, 2**20)

    def field_ids(self, f: int) -> np.ndarray:
        """The ID of every rank of field ``C{f+1}`` (index = rank; :meth:`batch_and_ranks`)."""
        return self._id_of(f, np.arange(self._zipf[f][2], dtype=np.int64))

    def batch(self, index: int, size: int, with_truth: bool = False) -> pa.RecordBatch:
        """Events ``[index*size, (index+1)*size)``. Pure function of ``(seed, index, size)``:
        same input -> same bytes, any order, any process."""
        return self.batch_and_ranks(index, size, with_truth)[0]

    def batch_and_ranks(self, index: int, size: int, with_truth: bool = False) -> tuple[pa.RecordBatch,
                                                                                         list[np.ndarray]]:
        """:meth:`batch` and the rank of each ``C`` column's IDs (``C{f+1} == field_ids(f)[ranks[f]]``)."""
        if index < 0 or size < 1:
            raise ValueError(f"need index >= 0 and size >= 1, got {index}, {size}")
        start = index * size
        bitgen = np.random.PCG64()
        bitgen.state = self._state
        bitgen.advance(start * K)
        u = np.ascontiguousarray(np.random.Generator(bitgen).random(size * K).reshape(size, K).T)
        k = min(max(self.drift_at - start, 0), size)  # rows [0, k) before the drift, [k, size) after
        event_id = np.arange(start, start + size, dtype=np.int64)
        fam, u2 = self.family, self._extra(start, size)
        mask = None if fam.drift == "abrupt" else after_mask(fam, event_id, self.drift_at,
                                                             None if u2 is None else u2[0])
        logit = np.full(size, INTERCEPT)
        if mask is None:
            logit[k:] += DRIFT_SHIFT * fam.drift_strength
        else:
            logit[mask] += DRIFT_SHIFT * fam.drift_strength

        def gather(before: np.ndarray, after: np.ndarray, r: np.ndarray) -> np.ndarray:
            if mask is not None and before is not after:
                return np.where(mask, after[r], before[r])
            if before is after or k == size:
                return before[r]
            if k == 0:
                return after[r]
            return np.concatenate([before[r[:k]], after[r[k:]]])

        ranks, cols = [], []
        for f in range(N_CAT):
            r, ids = self._ranks(f, u[f])
            ranks.append(r)
            cols.append(_arrow(ids))
            if (w := self._w[f]) is not None:
                logit += gather(*w, r)
        for (a, b, rank, _), (u0, v0, u1, v1) in zip(self.crosses, self._cross, strict=True):
            for c in range(rank):
                logit += gather(u0[c], u1[c], ranks[a]) * gather(v0[c], v1[c], ranks[b])
        for j, (alpha, scale, miss_rate, coef) in enumerate(NUMS):
            uj = u[N_CAT + j]
            missing = uj < miss_rate
            q = np.maximum(uj - miss_rate, 0.0) / (1.0 - miss_rate)  # uniform given not missing
            x = np.floor(np.minimum(scale * np.expm1(np.log1p(-q) / -alpha), 1e12))  # pareto II
            if coef or j == BUMP[0]:
                z = np.log1p(x)  # 0 where missing
                logit += coef * (z - np.log1p(scale * (2.0 ** (1.0 / alpha) - 1.0)))  # centred at median
                if j == BUMP[0]:
                    logit += BUMP[3] * np.exp(-(((z - BUMP[1]) / BUMP[2]) ** 2))
            if j in MISSING_EFFECT:
                logit += MISSING_EFFECT[j] * missing
            cols.append(_arrow(x, valid_bits=np.packbits(~missing, bitorder="little")))
        if fam.multi_valued:
            assert u2 is not None
            multi, effect = self.multi.columns(u2)
            logit += effect
        p = 1.0 / (1.0 + np.exp(-logit))
        ts = self.start_ts_ms + np.floor(event_id * 1000.0 / self.events_per_s).astype(np.int64)
        label = (u[K - 1] < p).astype(np.int64)
        head = [_arrow(event_id), _arrow(ts), _arrow(label)]
        if fam.multi_valued:
            cols += multi
        if with_truth:
            out = pa.RecordBatch.from_arrays(head + cols + [_arrow(p)], schema=self.schema.append(TRUTH_SCHEMA[-1]))
        else:
            out = pa.RecordBatch.from_arrays(head + cols, schema=self.schema)
        return out, ranks

    def _extra(self, start: int, size: int) -> np.ndarray | None:
        """The member's extra uniforms ``[K2, size]`` of events ``[start, start + size)`` (None: it has none)."""
        if not self._k2:
            return None
        bitgen = np.random.PCG64()
        bitgen.state = self._state2
        bitgen.advance(start * self._k2)
        return np.ascontiguousarray(np.random.Generator(bitgen).random(size * self._k2).reshape(size, self._k2).T)

    def _batches(self, events: int, batch_size: int, with_truth: bool = False) -> Iterator[pa.RecordBatch]:
        """The first ``events`` events as ``batch(i, batch_size)``, the last one cut short."""
        for i in range(-(-events // batch_size)):
            b = self.batch(i, batch_size, with_truth)
            yield b.slice(0, min(batch_size, events - i * batch_size))

    def oracle_auc(self, events: int, batch_size: int = 4096) -> float | None:
        """AUC of the true click probabilities against the drawn labels, first ``events`` events
        (None when they hold one class only)."""
        bs = list(self._batches(events, batch_size, with_truth=True))
        p = np.concatenate([b.column("p_true").to_numpy() for b in bs])
        return auc_from_arrays(np.concatenate([b.column("label").to_numpy() for b in bs]), p)

    def to_csv(self, path: str | os.PathLike, events: int, batch_size: int = 4096) -> None:
        """Write a header line and the first ``events`` events (``I`` as decimal ints, missing =
        empty field) to ``path``, atomically: via a hidden ``.name.tmp`` file, then a rename."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        schema = pa.schema([pa.field(f.name, pa.string() if f.type == pa.string() else pa.int64())
                            for f in self.schema])
        try:
            with open(tmp, "wb") as fh:
                fh.write((",".join(self.schema.names) + "\n").encode())
                opts = pacsv.WriteOptions(include_header=False)
                with pacsv.CSVWriter(fh, schema, write_options=opts) as w:
                    for b in self._batches(events, batch_size):
                        w.write_batch(b.cast(schema))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
