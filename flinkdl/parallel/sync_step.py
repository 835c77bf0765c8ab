"""Synchronous micro-steps of one replica: local gradients → rendezvous → the rank-ordered sum, applied.

The model's loss is a *sum* over rows, so the gradient of a union of batches is the sum of the
per-worker gradients. Every rank scores its slice with the same (replicated) model, hands in its
gradients, sums all ranks' in rank order (sparse: indices and values concatenated, duplicates summed
by the optimizer; dense: added) and applies the sum with its own optimizer: replicas stay equal, and
equal to one model stepping on the union of the slices.

Every rank must join every exchange. Each contribution carries its rows, how many micro-steps its
batch still has and whether its input ended; a batch's loop ends when no rank has steps left, and
:meth:`SyncStepper.drain` (end of input) keeps contributing empty steps until every rank's input ended.
"""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from flinkdl.models.base import ModelBase
from flinkdl.models.tensors import to_tensor
from flinkdl.parallel.rendezvous import Rendezvous


class Exchange(ABC):
    """One rank's side of a rendezvous: ``exchange(blob)`` → every rank's blob of that round, in rank order."""

    rank: int
    world: int

    @abstractmethod
    def exchange(self, blob: bytes) -> list[bytes]: ...


class LocalExchange(Exchange):
    """In-process ranks over one :class:`Rendezvous` (threads; tests)."""

    def __init__(self, rendezvous: Rendezvous, rank: int, world: int, key: str = "local",
                 timeout_s: float = 60.0) -> None:
        self.rv, self.rank, self.world, self.key, self.timeout_s = rendezvous, rank, world, key, timeout_s
        self.round = 0

    def exchange(self, blob: bytes) -> list[bytes]:
        out = self.rv.gather(self.key, self.round, self.rank, self.world, blob, self.timeout_s)
        self.round += 1
        return out


@dataclass
class Part:
    """A decoded contribution: rows learnt, micro-steps left in its batch, input ended, gradients by variable index."""

    rows: int
    remaining: int
    done: bool
    grads: dict[int, tuple[np.ndarray, ...]]


def encode(rows: int, remaining: int, done: bool, grads: list[tuple[np.ndarray, ...]] | None) -> bytes:
    """A contribution as bytes: a length-prefixed JSON header (counts, array dtypes and shapes), then the arrays."""
    arrays = [(k, np.ascontiguousarray(a)) for k, g in enumerate(grads or []) for a in g]
    head = json.dumps({"meta": [rows, remaining, int(done)],
                       "arrays": [[k, a.dtype.str, list(a.shape)] for k, a in arrays]}).encode()
    return b"".join([struct.pack("<I", len(head)), head, *(a.tobytes() for _, a in arrays)])


def decode(blob: bytes) -> Part:
    """Inverse of :func:`encode` (arrays are read-only views of ``blob``)."""
    (n,) = struct.unpack_from("<I", blob)
    head = json.loads(blob[4:4 + n])
    rows, remaining, done = head["meta"]
    grads: dict[int, list[np.ndarray]] = {}
    at = 4 + n
    for k, dtype, shape in head["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape))
        grads.setdefault(int(k), []).append(np.frombuffer(blob, dt, count, at).reshape(shape))
        at += count * dt.itemsize
    return Part(int(rows), int(remaining), bool(done), {k: tuple(v) for k, v in grads.items()})


class SyncStepper:
    """Drives ``model``'s steps through ``exchange``; ``micro_batch_rows``: each rank's slice (m / p of a p=1 job's)."""

    def __init__(self, model: ModelBase, exchange: Exchange, micro_batch_rows: int | None = None) -> None:
        self.model, self.ex, self.m = model, exchange, micro_batch_rows
        self.names = list(model.variables())
        self.vars = [model.variables()[n] for n in self.names]
        self.sparse = [n in model.sparse_names() for n in self.names]
        self.steps = 0  # exchanges in which some rank learnt a row (equal on every rank)
        self.batches = 0  # train_batch rounds in which some rank learnt a row (p=1's ModelBase.version)
        self._touched: list[np.ndarray] = []  # table rows the applied sums changed, since take_touched
        model.create_optimizer_state()
        lay = model.layout
        specs = (tf.TensorSpec([None, lay.n_ids], tf.int64), tf.TensorSpec([None, lay.n_dense], tf.float32),
                 tf.TensorSpec([None], tf.float32))
        self._grads_fn = tf.function(self._grads, input_signature=specs, reduce_retracing=True)
        flat: list[tf.TensorSpec] = []
        for v, sp in zip(self.vars, self.sparse, strict=True):
            flat += [tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, *v.shape[1:]], tf.float32)] if sp \
                else [tf.TensorSpec(v.shape, tf.float32)]
        self._apply_fn = tf.function(self._apply, input_signature=(tf.TensorSpec([], tf.float32), *flat))

    def _grads(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            logits = self.model.logits(ids, dense)
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        out: list[tf.Tensor] = []
        for g, v, sp in zip(tape.gradient(loss, self.vars), self.vars, self.sparse, strict=True):
            if sp:
                if g is None:
                    out += [tf.zeros([0], tf.int64), tf.zeros([0, *v.shape[1:]])]
                elif isinstance(g, tf.IndexedSlices):
                    out += [tf.cast(g.indices, tf.int64), g.values]
                else:  # a dense gradient of a table: its non-zero rows
                    rows = tf.reshape(tf.where(tf.reduce_any(tf.not_equal(g, 0), axis=1)), [-1])
                    out += [rows, tf.gather(g, rows)]
            else:
                out.append(tf.zeros(v.shape) if g is None else tf.convert_to_tensor(g))
        return tf.sigmoid(logits), out

    def _apply(self, rows: tf.Tensor, *flat: tf.Tensor) -> tf.Tensor:
        grads, k = [], 0
        for v, sp in zip(self.vars, self.sparse, strict=True):
            if sp:
                grads.append(tf.IndexedSlices(flat[k + 1], flat[k], tf.shape(v, out_type=tf.int64)))
                k += 2
            else:
                grads.append(flat[k])
                k += 1
        with tf.control_dependencies(self.model.apply_gradients(grads, rows)):
            return tf.constant(0)

    def _reduce_and_apply(self, parts: list[Part]) -> None:
        rows = sum(p.rows for p in parts)
        if rows == 0:  # nobody learnt: not a step (a zero step is not neutral for FTRL or Adam)
            return
        flat: list[np.ndarray] = []
        for k, sp in enumerate(self.sparse):
            got = [p.grads[k] for p in parts if k in p.grads]  # rank order
            if sp:
                flat.append(np.concatenate([g[0] for g in got]))
                self._touched.append(flat[-1])
                flat.append(np.concatenate([g[1] for g in got]))
            else:
                total = got[0][0]
                for g in got[1:]:
                    total = total + g[0]
                flat.append(total)
        self._apply_fn(to_tensor(np.array(rows, np.float32)), *(to_tensor(a) for a in flat))
        self.steps += 1

    def _step(self, part: tuple[np.ndarray, np.ndarray, np.ndarray] | None, remaining: int,
              done: bool) -> tuple[np.ndarray | None, list[Part]]:
        scores, rows = None, 0
        grads: list[tuple[np.ndarray, ...]] | None = None
        if part is not None and len(part[2]):
            s, flat = self._grads_fn(*(to_tensor(a) for a in part))
            scores, rows = s.numpy(), len(part[2])
            it = iter(t.numpy() for t in flat)
            grads = [(next(it), next(it)) if sp else (next(it),) for sp in self.sparse]
        parts = [decode(b) for b in self.ex.exchange(encode(rows, remaining, done, grads))]
        self._reduce_and_apply(parts)
        return scores, parts

    def train_batch(self, ids: np.ndarray, dense: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Score then learn this rank's batch in synchronous micro-steps; the scores, in row order."""
        n = len(labels)
        m = self.m or max(n, 1)
        slices = [(a, min(a + m, n)) for a in range(0, n, m)]
        scores: list[np.ndarray] = []
        k, steps = 0, self.steps
        while True:
            part = None
            if k < len(slices):
                a, b = slices[k]
                part = (ids[a:b], dense[a:b], labels[a:b])
            s, parts = self._step(part, max(len(slices) - k - 1, 0), False)
            if s is not None:
                scores.append(s)
            k += 1
            if k >= len(slices) and all(p.remaining == 0 for p in parts):
                break
        self.batches += self.steps > steps
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)

    def take_touched(self) -> np.ndarray:
        """The distinct table rows changed since the last call (every rank's, not only this one's)."""
        out = np.unique(np.concatenate(self._touched)) if self._touched else np.zeros(0, np.int64)
        self._touched = []
        return out

    def drain(self) -> None:
        """This rank's input ended: join the other ranks' steps until every rank's input ended."""
        while True:
            _, parts = self._step(None, 0, True)
            if all(p.done for p in parts):
                return
