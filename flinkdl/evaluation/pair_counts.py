"""Sorted per-score label counts and their (positive, negative) pairs, for the exact progressive AUC.

A *counts* triple ``(keys, neg, pos)`` holds sorted distinct uint32 score keys and the negatives /
positives seen at each; a *cumulative* triple ``(keys, cneg, cpos)`` holds, at each key, the counts
at that key or below (``np.cumsum``). "Twice the wins" of a set of pairs counts a pair whose positive
scores higher 2 and a tie 1: the AUC is twice the wins over ``2 P N``, exact in integers.

>>> import numpy as np
>>> a = counts_of(np.sort(np.array([4 << 1 | 1, 2 << 1, 4 << 1, 7 << 1 | 1], np.uint64)))
>>> a  # keys 2, 4, 7: one negative at 2, one of each at 4, one positive at 7
(array([2, 4, 7], dtype=uint32), array([1, 1, 0]), array([0, 1, 1]))
>>> internal_twice_wins(a[1], a[2])  # positive 4 beats negative 2, ties negative 4; 7 beats both
7
>>> b = (np.array([3], np.uint32), np.array([1]), np.array([1]))  # one of each at 3
>>> cross_twice_wins(a, cumulative(b)), cross_twice_wins(b, cumulative(a))  # 4 + 2 wins, either way round
(6, 6)
>>> internal_twice_wins(*uncumulative(combine([a, b]))[1:]) == 7 + 6 + internal_twice_wins(b[1], b[2])
True
"""

from __future__ import annotations

import numpy as np

Counts = tuple[np.ndarray, np.ndarray, np.ndarray]

_ONE = np.uint64(1)
_HIGH = np.uint64(32)
_LOW = np.uint64(0xFFFF_FFFF)


def counts_of(packed: np.ndarray) -> Counts:
    """Run-length counts of sorted packed events (``key << 1 | label``, uint64)."""
    starts = np.flatnonzero(np.concatenate(([True], packed[1:] != packed[:-1])))
    runs = np.diff(np.append(starts, packed.size))
    uk = packed[starts]
    key = (uk >> _ONE).astype(np.uint32)
    first = np.concatenate(([True], key[1:] != key[:-1]))  # at most 2 runs (neg, pos) per key
    group = np.cumsum(first) - 1
    lab = (uk & _ONE).astype(bool)
    neg = np.zeros(np.count_nonzero(first), np.int64)
    pos = np.zeros(neg.size, np.int64)
    neg[group[~lab]] = runs[~lab]
    pos[group[lab]] = runs[lab]
    return key[first], neg, pos


def combine(parts: list[Counts]) -> Counts:
    """The *cumulative* triple of several counts triples (keys may repeat across parts)."""
    keys = np.concatenate([p[0] for p in parts])
    tagged = (keys.astype(np.uint64) << _HIGH) | np.arange(keys.size, dtype=np.uint64)
    tagged.sort(kind="stable")  # timsort of the values: a linear merge of the sorted parts, no argsort
    order = (tagged & _LOW).astype(np.intp)
    keys = (tagged >> _HIGH).astype(np.uint32)
    last = np.flatnonzero(np.concatenate((keys[1:] != keys[:-1], [True])))  # each key's last row
    return (keys[last], *(np.cumsum(np.concatenate([p[i] for p in parts])[order])[last] for i in (1, 2)))


def cumulative(c: Counts) -> Counts:
    return c[0], np.cumsum(c[1]), np.cumsum(c[2])


def uncumulative(c: Counts) -> Counts:
    return c[0], np.diff(c[1], prepend=0), np.diff(c[2], prepend=0)


def internal_twice_wins(neg: np.ndarray, pos: np.ndarray) -> int:
    """Twice the wins of the pairs within one counts triple (int64: the caller checks ``2 P N < 2**63``)."""
    return int(np.dot(pos, 2 * np.cumsum(neg) - neg))


def cross_twice_wins(a: Counts, b: Counts) -> int:
    """Twice the wins of the pairs of a positive of counts ``a`` and a negative of cumulative ``b``, and of a
    negative of ``a`` and a positive of ``b``: O(len(a) log len(b)). int64, as :func:`internal_twice_wins`."""
    keys, neg, pos = a
    bkeys, bcneg, bcpos = b
    if not (keys.size and bkeys.size):
        return 0
    lo = np.searchsorted(bkeys, keys)  # b's keys below a's key: [0, lo); equal: [lo, hi)
    hi = lo + (bkeys[np.minimum(lo, bkeys.size - 1)] == keys)
    below = lo > 0
    neg_lo = np.where(below, bcneg[lo - 1], 0)  # b's negatives under each key of a, and up to it
    neg_hi = np.where(hi > 0, bcneg[hi - 1], 0)
    pos_lo = np.where(below, bcpos[lo - 1], 0)
    pos_hi = np.where(hi > 0, bcpos[hi - 1], 0)
    return int(np.dot(pos, neg_lo + neg_hi)) + int(np.dot(neg, 2 * bcpos[-1] - pos_lo - pos_hi))
