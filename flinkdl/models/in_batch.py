"""Fresh in-batch scores: each row scored as if the batch's earlier rows had already been learnt.

A batch learnt in one step scores every row with the model as it was before the batch, so on a
stream whose ids come in bursts (a user rating dozens of movies in a minute) the later rows of a
burst are scored without what its earlier rows taught. With ``model.fresh_scores`` the step makes
two forward passes: the first gives each table-row occurrence its own logloss gradient; the
second scores each row with its ids' rows moved by the per-event Adagrad steps of the *earlier*
rows of the batch on the same ids (an exclusive cumulative sum per id, in row order). Only labels
of earlier events enter a row's score, so the scores stay prequential; the update itself is the
usual one. :func:`~flinkdl.models.base.lookup` calls :func:`adjust`, which is a no-op unless a
pass is active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import tensorflow as tf

Record = tuple[tf.Variable, tf.Tensor, tf.Tensor]  # (table, flat ids, offset)


class _Probe:
    """First pass: a zero offset on every looked-up row, watched, so the tape gives per-occurrence gradients."""

    def __init__(self, tape: tf.GradientTape, records: list[Record]) -> None:
        self.tape, self.records = tape, records

    def adjust(self, table: tf.Variable, ids: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        offset = tf.zeros_like(rows)
        self.tape.watch(offset)
        self.records.append((table, ids, offset))
        return rows + offset


class _Apply:
    """Second pass: the lookups, in the first pass's order, get their precomputed shifts."""

    def __init__(self, shifts: list[tf.Tensor | None]) -> None:
        self.shifts = list(shifts)

    def adjust(self, table: tf.Variable, ids: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        shift = self.shifts.pop(0)
        return rows if shift is None else rows + shift


#: The pass in progress in this thread/context (None: lookups are left alone).
_active: ContextVar[_Probe | _Apply | None] = ContextVar("fresh_scores_pass", default=None)


def adjust(table: tf.Variable, ids: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``rows`` (``[N, dim]``, one per id of the flat ``ids``) as the active pass wants them."""
    p = _active.get()
    return rows if p is None else p.adjust(table, ids, rows)


@contextlib.contextmanager
def _pass(p: _Probe | _Apply) -> Iterator[_Probe | _Apply]:
    token = _active.set(p)
    try:
        yield p
    finally:
        _active.reset(token)


def probe(tape: tf.GradientTape, records: list[Record], on: bool = True) -> contextlib.AbstractContextManager:
    """Append every lookup of the forward pass run inside (``tape`` active) to ``records``; nothing if not ``on``."""
    return _pass(_Probe(tape, records)) if on else contextlib.nullcontext()


def shifted(shifts: list[tf.Tensor | None]) -> contextlib.AbstractContextManager[_Probe | _Apply]:
    """Run a forward pass whose lookups get ``shifts`` (one per recorded lookup, in order)."""
    return _pass(_Apply(shifts))


def earlier_steps(grads: tf.Tensor, ids: tf.Tensor, accumulator: tf.Tensor, learning_rate: float) -> tf.Tensor:
    """Per occurrence: the Adagrad steps of the earlier occurrences of the same id.

    ``grads`` ``[N, dim]`` per-occurrence gradients in row order, ``ids`` ``[N]``, ``accumulator``
    ``[N, dim]`` each id's accumulator before the batch. Returns ``-lr·S/√(acc + Q)`` with ``S``,
    ``Q`` the exclusive per-id cumulative sums of the gradients and their squares.
    """
    _, group = tf.unique(ids)
    order = tf.argsort(group, stable=True)  # grouped by id, row order within a group
    g = tf.gather(grads, order)
    gs = tf.gather(group, order)
    n = tf.size(ids)
    first = tf.math.unsorted_segment_min(tf.range(n), gs, tf.reduce_max(group) + 1)
    start = tf.gather(first, gs)

    def excl(x: tf.Tensor) -> tf.Tensor:
        c = tf.cumsum(x, axis=0, exclusive=True)
        return c - tf.gather(c, start)

    s, q = excl(g), excl(tf.square(g))
    back = tf.math.invert_permutation(order)
    s, q = tf.gather(s, back), tf.gather(q, back)
    return -learning_rate * s * tf.math.rsqrt(accumulator + q)
