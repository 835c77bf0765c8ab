"""The job's featurizer as TensorFlow ops: raw columns → hashed ids and dense floats, in the graph.

MurmurHash3_x86_32 in ``uint32`` ops, bit-equal to ``mmh3`` and :mod:`flinkdl.features.hashing`:
:func:`murmur3_int64` hashes an int64's 8 little-endian bytes, :func:`murmur3_strings` a string's
UTF-8 bytes (TensorFlow has no murmur3 of its own: ``tf.strings.to_hash_bucket_fast`` is FarmHash).
:class:`RawFeaturizer` crosses, bucketizes and transforms exactly like
:class:`flinkdl.features.transform.Featurizer`.
"""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.features import FeatureConfig
from flinkdl.features.hashing import field_seed

_C1, _C2, _N, _F1, _F2 = 0xCC9E2D51, 0x1B873593, 0xE6546B64, 0x85EBCA6B, 0xC2B2AE35


def _u32(x: int) -> tf.Tensor:
    return tf.constant(x, tf.uint32)


def _rotl(x: tf.Tensor, r: int) -> tf.Tensor:
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, _u32(r)), tf.bitwise.right_shift(x, _u32(32 - r)))


def _mix_k(k: tf.Tensor) -> tf.Tensor:
    return _rotl(k * _u32(_C1), 15) * _u32(_C2)


def _mix_h(h: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    return _rotl(tf.bitwise.bitwise_xor(h, _mix_k(k)), 13) * _u32(5) + _u32(_N)


def _fmix(h: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    h = tf.bitwise.bitwise_xor(h, length)
    for shift, mult in ((16, _F1), (13, _F2), (16, None)):
        h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, _u32(shift)))
        if mult is not None:
            h = h * _u32(mult)
    return h


def murmur3_words(lo: tf.Tensor, hi: tf.Tensor, seed: int) -> tf.Tensor:
    """MurmurHash3_x86_32 of the 8 bytes ``lo | hi << 32`` (two uint32 words) → uint32."""
    h = tf.fill(tf.shape(lo), _u32(seed & 0xFFFFFFFF))
    h = _mix_h(_mix_h(h, lo), hi)
    return _fmix(h, _u32(8))


def murmur3_int64(v: tf.Tensor, seed: int) -> tf.Tensor:
    """MurmurHash3_x86_32 of each int64's 8 little-endian bytes → uint32."""
    mask = tf.constant(0xFFFFFFFF, tf.int64)
    lo = tf.cast(tf.bitwise.bitwise_and(v, mask), tf.uint32)
    hi = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(v, tf.constant(32, tf.int64)), mask), tf.uint32)
    return murmur3_words(lo, hi, seed)


def murmur3_strings(s: tf.Tensor, seed: int) -> tf.Tensor:
    """MurmurHash3_x86_32 of each string's bytes → uint32 (``""`` hashes like a missing value).

    The strings are zero-padded to whole 4-byte blocks of the longest one; each row mixes its
    own full blocks, then its tail (whose padding bytes are zero, as murmur3's tail reads them).
    """
    n = tf.strings.length(s)  # bytes
    width = tf.maximum((tf.reduce_max(tf.concat([n, [0]], 0)) + 3) // 4 * 4, 4)
    raw = tf.cast(tf.io.decode_raw(s, tf.uint8, fixed_length=width), tf.uint32)  # [B, width]
    raw = tf.reshape(raw, [tf.shape(s)[0], width // 4, 4])
    words = (raw[:, :, 0] + tf.bitwise.left_shift(raw[:, :, 1], _u32(8))
             + tf.bitwise.left_shift(raw[:, :, 2], _u32(16)) + tf.bitwise.left_shift(raw[:, :, 3], _u32(24)))
    full = n // 4

    def body(i: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return i + 1, tf.where(i < full, _mix_h(h, words[:, i]), h)

    h0 = tf.fill(tf.shape(n), _u32(seed & 0xFFFFFFFF))
    _, h = tf.while_loop(lambda i, h: i < width // 4, body, (tf.constant(0), h0))
    tail = tf.gather(words, tf.minimum(full, width // 4 - 1), axis=1, batch_dims=1)
    h = tf.where(n % 4 > 0, tf.bitwise.bitwise_xor(h, _mix_k(tail)), h)
    return _fmix(h, tf.cast(n, tf.uint32))


class RawFeaturizer:
    """Raw columns (config order: categorical, then numeric) → ``(ids [B, F] int64, dense [B, D] float32)``.

    An ``int`` field takes int64, a ``string`` field a string (``""`` = missing), a numeric float64
    (NaN = missing).
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg

    def specs(self) -> list[tf.TensorSpec]:
        """One 1-D input per raw column."""
        f = self.cfg
        out = [tf.TensorSpec([None], tf.int64 if c.type == "int" else tf.string, name=c.name) for c in f.categorical]
        return out + [tf.TensorSpec([None], tf.float64, name=n.name) for n in f.numeric]

    def __call__(self, *cols: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        f = self.cfg
        names = [c.name for c in f.categorical]
        hashes = [(murmur3_int64 if c.type == "int" else murmur3_strings)(cols[i], field_seed(f.hash_seed, c.name))
                  for i, c in enumerate(f.categorical)]
        crossed = [murmur3_words(hashes[names.index(a)], hashes[names.index(b)], field_seed(f.hash_seed, f"{a}#{b}"))
                   for a, b in f.crosses]
        mask = _u32((1 << f.hash_bits) - 1)
        batch = tf.shape(cols[0])[0]
        ids_cols = [tf.cast(tf.bitwise.bitwise_and(h, mask), tf.int64) for h in hashes + crossed]
        ids = tf.stack(ids_cols, axis=1) if ids_cols else tf.zeros([batch, 0], tf.int64)
        dense = []
        for k, num in enumerate(f.numeric):
            x = cols[len(names) + k]
            missing = tf.math.is_nan(x)
            x = tf.where(missing, tf.zeros_like(x), x)
            if num.transform == "log1p":
                x = tf.sign(x) * tf.math.log1p(tf.abs(x))
            dense += [tf.cast(x, tf.float32), tf.cast(missing, tf.float32)]
        return ids, tf.stack(dense, axis=1) if dense else tf.zeros([batch, 0])
