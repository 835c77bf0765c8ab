"""The generator family's extras over the built-in stream (:class:`~flinkdl.sources.generator.ClickStream`).

A member is the built-in stream with :class:`~flinkdl.config.generator_family.FamilyConfig`
parameters (config: ``source.generator.family`` or ``preset``). What the defaults leave as they
are is drawn as before, so the default member is today's stream byte for byte; everything a member
adds (extra crosses, multi-valued fields, gradual or recurring drift) draws from its own seeded
streams:

- per event, ``extra_uniforms`` uniforms from a second PCG64 stream (one for the gradual drift,
  then per multi-valued field a bag length and ``multi_max_len`` ids);
- multi-valued field ``Mj`` holds a bag of 1..``multi_max_len`` Zipf ids (vocabulary
  ``2000 · vocab_scale``) joined with ``|`` (``"270000123|270004567"``); its effect on the
  logit is the mean of its ids' hidden weights;
- drift kind: which events follow the new concept (:func:`after_mask`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.config.generator_family import FamilyConfig

MULTI_VOCAB, MULTI_ZIPF, MULTI_STD, SEPARATOR = 2000, 1.1, 0.4, "|"
ID_MASK = (1 << 20) - 1


def extra_uniforms(fam: FamilyConfig) -> int:
    """Uniforms per event the member draws from its second stream (0: none)."""
    return (1 + fam.multi_valued * (1 + fam.multi_max_len)) if fam.drift == "gradual" or fam.multi_valued else 0


def after_mask(fam: FamilyConfig, event_id: np.ndarray, drift_at: int, u: np.ndarray | None) -> np.ndarray:
    """Bool per event: follows the concept after the drift (gradual: ``u`` are the events' drift uniforms)."""
    since = event_id - drift_at
    if fam.drift == "none":
        return np.zeros(len(event_id), bool)
    if fam.drift == "abrupt":
        return since >= 0
    if fam.drift == "gradual":
        assert u is not None
        return (since >= 0) & (u < (since + 1) / fam.drift_width)
    return (since >= 0) & ((since // fam.drift_width) % 2 == 0)  # recurring


def extra_cross_pairs(n: int, vocabs: list[int], rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` distinct pairs of fields (vocabulary >= 10) for the crosses beyond the built-in ones."""
    fields = [f for f, v in enumerate(vocabs) if v >= 10]
    pairs: list[tuple[int, int]] = []
    while len(pairs) < n:
        a, b = sorted(int(x) for x in rng.choice(fields, 2, replace=False))
        if (a, b) not in pairs:
            pairs.append((a, b))
    return pairs


class MultiValued:
    """The hidden tables of the multi-valued fields ``M1..Mn`` and their columns."""

    def __init__(self, fam: FamilyConfig, rng: np.random.Generator, first_field: int) -> None:
        self.fam = fam
        self.vocab = max(2, int(MULTI_VOCAB * fam.vocab_scale))
        self.a = (self.vocab + 1.0) ** (1.0 - MULTI_ZIPF) - 1.0
        edges = np.arange(1, self.vocab + 2, dtype=np.float64) ** (1.0 - MULTI_ZIPF)
        p = np.diff(edges) / (edges[-1] - 1.0)
        self.fields = []
        for j in range(fam.multi_valued):
            z = rng.standard_normal(self.vocab)
            z -= p @ z
            w = (z * (MULTI_STD / np.sqrt(p @ (z * z)))).astype(np.float32)
            mult, key = 2 * int(rng.integers(1 << 18, 1 << 19)) + 1, int(rng.integers(ID_MASK + 1))
            self.fields.append(((first_field + j) * 10_000_000, mult, key, w))

    @property
    def names(self) -> list[str]:
        return [f"M{j + 1}" for j in range(self.fam.multi_valued)]

    def columns(self, u: np.ndarray) -> tuple[list[pa.Array], np.ndarray]:
        """``u``: ``[1 + n·(1 + L), B]`` extra uniforms → (one string column per field, logit term)."""
        size, L = u.shape[1], self.fam.multi_max_len
        logit, cols = np.zeros(size), []
        for j, (offset, mult, key, w) in enumerate(self.fields):
            at = 1 + j * (1 + L)
            length = 1 + np.minimum((u[at] * L).astype(np.int64), L - 1)
            r = np.minimum(np.exp(np.log1p(u[at + 1:at + 1 + L].T * self.a) / (1.0 - MULTI_ZIPF)).astype(np.int64) - 1,
                           self.vocab - 1)  # [B, L] ranks
            keep = np.arange(L)[None, :] < length[:, None]
            logit += (w[r] * keep).sum(axis=1) / length
            ids = (((r[keep] * mult) & ID_MASK) ^ key) + offset
            offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int32)
            bags = pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids).cast(pa.string()))
            cols.append(pc.binary_join(bags, SEPARATOR))
        return cols, logit
