"""A worker's link to the parameter server: load on start, push touched-row deltas, refresh.

The worker's model variables are its working copy. Before each step :meth:`PsSync.before_step` takes the
batch's ids that were not touched since the last sync, refreshes them from the server (``pull_on_touch``) and
records their values (the *base*: value plus optimizer slots). Every ``push_every_batches`` batches or
``push_every_s`` seconds :meth:`PsSync.sync` pushes ``current − base`` for those rows (and for every dense
variable), reads the rows back (they now include other workers' deltas) and writes them into the model.
Delta-add on the server makes several workers on one server converge. A push also sends the base, which the
server uses only for rows it does not have yet.

A *single writer* (``ps.single_writer``; by default a job at parallelism 1) has nobody's updates
to take: it records no base, pulls nothing on touch and reads nothing back; it pushes the touched
rows' values, which the server assigns (half the bytes of delta + base), and pushes less often
(:func:`cadence`: a row touched in many batches goes once per push). Its pushes go out on a
background thread while the next steps run (one sync in flight, in order); a commit first waits for
every push before it, so a committed version still holds every batch up to its step. Dense variables still
go as deltas, and the worker takes the server's float32 ``base + delta`` without asking for it.
Worker and server stay equal bit for bit, which exactly-once recovery relies on: a restored
worker continues from the server exactly where the lost one was.

With ``lanes`` (exactly-once at parallelism > 1) a commit is a *writer commit*: the deltas this
worker pushed since its last one become the next segment of its lane on the PS
(:mod:`flinkdl.ps.lanes`), and ``committed`` is that segment's number.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from flinkdl.config.schema import PsConfig
from flinkdl.models.base import ModelBase
from flinkdl.models.tensors import to_tensor
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError

log = logging.getLogger(__name__)


#: A single writer's push interval in batches when neither ``ps.single_writer_push_every_batches`` nor
#: ``ps.push_every_batches`` is set.
SINGLE_WRITER_PUSH_EVERY = 100


def cadence(cfg: PsConfig, single_writer: bool, commit_every_push: bool) -> tuple[int, int]:
    """``(batches per push, ticks per commit)``; a tick is a push of the ``push_every_batches`` /
    ``push_every_s`` cadence. A single writer outside exactly-once pushes every
    ``single_writer_push_every_batches`` (see :class:`PsConfig`), and its versions still come every
    ``commit_every_pushes`` ticks of that cadence, as with a push per tick."""
    if commit_every_push:
        return cfg.push_every_batches, 1
    every = cfg.single_writer_push_every_batches
    if not single_writer or (every is None and "push_every_batches" in cfg.model_fields_set):
        return cfg.push_every_batches, cfg.commit_every_pushes
    return every or SINGLE_WRITER_PUSH_EVERY, cfg.commit_every_pushes


def writer_name(cfg: PsConfig, subtask: int) -> str:
    """The fencing name of subtask ``subtask``'s workers (and of its trainer, which fences them on recovery)."""
    return f"{cfg.table_prefix}worker-{subtask}"


class _SparseTable:
    """A model table and its optimizer slots, read and written as ``[n, dim * (1 + slots)]`` rows.

    Arrays reach TF through DLPack (:func:`~flinkdl.models.tensors.to_tensor`): ``tf.constant`` of a numpy
    array, explicit or implied by an eager op, keeps a few hundred bytes inside TF per call. Each
    variable's gather is written straight into the rows (no ``tf.concat``); eager ops, since a
    ``tf.function`` of these few ops costs more CPU per call here than it saves.
    """

    def __init__(self, name: str, var: tf.Variable, slots: list[tuple[str, tf.Variable]]) -> None:
        self.name, self.var, self.slots = name, var, slots
        self.dim = int(var.shape[1])
        self._vars = (var, *(s for _, s in slots))
        self.dtype = var.dtype.as_numpy_dtype

    def read(self, ids: np.ndarray) -> np.ndarray:
        at = to_tensor(np.asarray(ids, np.int64))
        rows = np.empty((len(ids), self.dim * len(self._vars)), self.dtype)
        for k, v in enumerate(self._vars):
            rows[:, k * self.dim:(k + 1) * self.dim] = tf.gather(v, at).numpy()
        return rows

    def write(self, ids: np.ndarray, rows: np.ndarray) -> None:
        at = to_tensor(np.asarray(ids, np.int64))
        for k, v in enumerate(self._vars):
            part = np.asarray(rows[:, k * self.dim:(k + 1) * self.dim], self.dtype)
            v.scatter_update(tf.IndexedSlices(to_tensor(part), at))


class PsSync:
    """Keeps a model in step with a parameter server (see the module docstring)."""

    def __init__(self, model: ModelBase, cfg: PsConfig, buckets: int, commit_every_push: bool = False,
                 single_writer: bool = False, writer: str | None = None, lanes: bool = False) -> None:
        """``commit_every_push``: commit a version at every push (exactly-once mode: the Flink
        operator's state then only has to hold the batches since the last push).
        ``single_writer``: no other worker writes these tables (see the module docstring).
        ``writer``: take a fencing epoch under this name (:func:`writer_name`) before any write.
        ``lanes``: commit this writer's lane instead of a version (needs ``writer``, not ``single_writer``)."""
        if lanes and (writer is None or single_writer):
            raise PsError("writer lanes need a writer name and delta pushes (not ps.single_writer)")
        self.cfg = cfg
        self.single_writer = single_writer
        self.lanes = lanes
        self.push_every, self.commit_every = cadence(cfg, single_writer, commit_every_push)
        self.committed: int | None = None  # last version this worker committed
        self.client = PsClient.from_config(cfg)
        if writer is not None:
            self.client.fence(writer)
        self.can_commit = bool(self.client.health()["checkpoint"])
        model.create_optimizer_state()
        slots = model.slot_variables()
        variables = model.variables()
        self.tables = []
        for name in sorted(model.sparse_names()):
            mine = sorted((k.rsplit("/", 1)[1], v) for k, v in slots.items() if k.rsplit("/", 1)[0] == name)
            self.tables.append(_SparseTable(cfg.table_prefix + name, variables[name], mine))
        self.dense = {n: v for n, v in variables.items() if n not in model.sparse_names()}
        self.dense.update(model.dense_optimizer_state())  # so a restored model continues exactly
        self._mask = np.zeros(buckets, bool)
        self._touched: list[np.ndarray] = []
        self._base: list[list[np.ndarray]] = [[] for _ in self.tables]
        self.batches = self.pushes = 0
        self.loaded_rows = 0
        self._last = self._tick_at = time.monotonic()
        self._ticks = 0
        self._own = self.push_every != cfg.push_every_batches  # pushes apart from the ticks (see cadence)
        self._pusher: ThreadPoolExecutor | None = None  # a single writer's pushes, made on its first sync
        self._in_flight: Future | None = None
        #: called before each commit, after this sync's pushes: other state the version must hold pushes there
        self.before_commit: list[Callable[[], None]] = []
        self._load(buckets)

    def _load(self, buckets: int) -> None:
        for t in self.tables:
            self.client.create_table(t.name, t.dim, [s for s, _ in t.slots])
            ids, rows = self.client.pull_all(t.name)
            ok = (ids >= 0) & (ids < buckets)
            if not ok.all():
                log.warning("table %s: %d server rows outside [0, %d) ignored", t.name, (~ok).sum(), buckets)
            if ok.any():
                t.write(ids[ok], rows[ok])
            self.loaded_rows += int(ok.sum())
        server = self.client.dense_get()  # full names: the prefix is in them
        for name, var in self.dense.items():
            value = server.get(self.cfg.table_prefix + name)
            if value is not None and tuple(value.shape) != tuple(var.shape):
                raise PsError(f"dense variable {self.cfg.table_prefix + name!r} has shape {value.shape} on "
                              f"{self.cfg.address} but {tuple(var.shape)} in this model")
            if value is not None:
                var.assign(to_tensor(np.asarray(value, var.dtype.as_numpy_dtype)))
        self._dense_base = {n: v.numpy() for n, v in self.dense.items()}
        log.info("loaded %d rows and %d dense variables from %s", self.loaded_rows, len(server), self.cfg.address)

    def before_step(self, ids: tf.Tensor | np.ndarray) -> None:
        """Record the batch's newly touched rows and their values before the step changes them."""
        flat = np.asarray(ids).ravel()
        if self.single_writer:  # pushes values: no base to keep, the touched rows are the mask's
            self._mask[flat[flat >= 0] if len(flat) and flat.min() < 0 else flat] = True
            return
        flat = flat[flat >= 0]  # a multi-valued field's padding is no row
        new = np.unique(flat[~self._mask[flat]])  # most ids repeat within a sync window: filter first
        if len(new):
            self._mask[new] = True
            self._touched.append(new)
            for k, t in enumerate(self.tables):
                base = t.read(new)
                if self.cfg.pull_on_touch:  # take other workers' updates to these rows first
                    rows, exists = self.client.pull(t.name, new)
                    if exists.any():
                        base[exists] = rows[exists]
                        t.write(new[exists], rows[exists])
                self._base[k].append(base)

    def after_step(self) -> bool:
        """Count the batch; sync when due. Returns whether it synced."""
        self.batches += 1
        now = time.monotonic()
        due = self.batches % self.push_every == 0 or now - self._last >= self.cfg.push_every_s
        version = None
        if self._own:  # a version every commit_every ticks, pushed then whatever the push interval
            if self.batches % self.cfg.push_every_batches == 0 or now - self._tick_at >= self.cfg.push_every_s:
                self._ticks, self._tick_at = self._ticks + 1, now
                version = self._ticks % self.commit_every == 0
            due = due or bool(version)
        if due:
            self.sync(wait=False, commit=version)
        return due

    def sync(self, wait: bool = True, commit: bool | None = None) -> None:
        """Push deltas of touched rows and of dense variables, then refresh them from the server.

        ``wait=False``: a single writer's pushes may still be on their way when this returns (see the
        module docstring; :meth:`drain` waits for them). ``commit``: commit a version after the push
        (None: every ``commit_every`` pushes, unless the pushes have their own interval)."""
        if self.single_writer:  # sorted: the server's fastest lookups
            ids, order = np.flatnonzero(self._mask).astype(np.int64), np.zeros(0, np.int64)  # order: unused
        else:
            ids = np.concatenate(self._touched) if self._touched else np.zeros(0, np.int64)
            order = np.argsort(ids)  # distinct ids
            ids = ids[order]
        p = self.cfg.table_prefix
        sends: list[Callable[[], object]] = []
        for k, t in enumerate(self.tables):
            if len(ids) and self.single_writer:
                sends.append(functools.partial(self.client.push, t.name, ids, t.read(ids), assign=True))
            elif len(ids):
                base = np.concatenate(self._base[k])[order]
                self.client.push(t.name, ids, t.read(ids) - base, init=base)
                rows, _ = self.client.pull(t.name, ids)  # with the other workers' deltas
                t.write(ids, rows)
            self._base[k] = []
        current = {n: v.numpy() for n, v in self.dense.items()}
        delta = {p + n: current[n] - self._dense_base[n] for n in current}
        init = {p + n: self._dense_base[n] for n in current}
        sends.append(functools.partial(self.client.dense_add, delta, init=init))
        if self.single_writer:  # what the server computes, bit for bit
            server = {k: (init[k] + d).astype(np.float32) for k, d in delta.items()}
            self._send(sends, background=not wait)
        else:
            self._send(sends, background=False)
            server = self.client.dense_get()
        for n, var in self.dense.items():
            var.assign(to_tensor(np.asarray(server[p + n], var.dtype.as_numpy_dtype)))
        self._dense_base = {n: server[p + n] for n in self.dense}
        self._mask[ids] = False
        self._touched = []
        self._last = time.monotonic()
        self.pushes += 1
        if commit is None:
            commit = not self._own and self.pushes % self.commit_every == 0
        if self.can_commit and commit:
            for push in self.before_commit:
                push()
            self.drain()
            self.committed = self._commit()

    def _send(self, sends: list[Callable[[], object]], background: bool) -> None:
        """Run ``sends`` in order, after the pushes still in flight (whose errors raise here): on the
        push thread, or now."""
        self.drain()
        if not background:
            for send in sends:
                send()
            return
        if self._pusher is None:
            self._pusher = ThreadPoolExecutor(1, thread_name_prefix="ps-push")
        self._in_flight = self._pusher.submit(lambda: [send() for send in sends])

    def drain(self) -> None:
        """Wait until every push sent is on the server (raises a push's error)."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def _commit(self) -> int:
        """A writer commit of this worker's lane, or a version; returns its number."""
        return self.client.lane_commit() if self.lanes else int(self.client.commit()["version"])

    def close(self, commit: bool = True, report: str | None = None) -> dict | None:
        """Final push (and commit); returns the committed version's summary, also written to ``report``.

        The report file tells ``flinkdl run`` that this worker's last deltas are on the server.
        """
        self.sync()
        if self._pusher is not None:
            self._pusher.shutdown()
        for push in self.before_commit if commit and self.can_commit else ():
            push()
        if commit and self.can_commit and self.lanes:
            self.committed = self.client.lane_commit()
        out = self.client.commit() if commit and self.can_commit else None
        if out is not None and not self.lanes:
            self.committed = int(out["version"])
        self.client.close()
        if report:
            tmp = f"{report}.tmp"
            with open(tmp, "w") as f:
                json.dump({"committed": out, "pushes": self.pushes, "batches": self.batches}, f)
            os.replace(tmp, report)
        return out
