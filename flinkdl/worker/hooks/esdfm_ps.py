"""ES-DFM's elapsed-time model on the parameter server, in every version the main model commits.

Under ``job.exactly_once`` a restore rolls the PS back to the trainer's anchor, starts a worker that
loads from it and replays the tail (docs/EXACTLY_ONCE.md): the elapsed-time model has to come back
with the main model, or the replayed batches get other ES-DFM weights. Each of its two logistic
regressions gets a :class:`~flinkdl.worker.ps_sync.PsSync` of its own, over the tables
``<ps.table_prefix>es_dfm.dp.*`` and ``es_dfm.rn.*``; they never commit: they push (and wait) in the
main sync's :attr:`~flinkdl.worker.ps_sync.PsSync.before_commit`, so each version holds both models
after the same batch. The warm-up counts go along as one dense variable (``es_dfm.dp.seen``).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import tensorflow as tf

from flinkdl.feedback.esdfm import ElapsedTimeModel
from flinkdl.models.base import ModelBase
from flinkdl.ps.errors import PsError
from flinkdl.worker.ps_sync import PsSync

#: float32 holds counts exactly up to here; the warm-up only asks whether a count reached a threshold
_MAX_COUNT = 2**24


class _WithDense:
    """A model as :class:`PsSync` reads it, plus extra dense variables."""

    def __init__(self, model: ModelBase, extra: dict[str, tf.Variable]) -> None:
        self.model, self.extra = model, extra

    def create_optimizer_state(self) -> None:
        self.model.create_optimizer_state()

    def slot_variables(self) -> dict[str, tf.Variable]:
        return self.model.slot_variables()

    def variables(self) -> dict[str, tf.Variable]:
        return {**self.model.variables(), **self.extra}

    def sparse_names(self) -> frozenset[str]:
        return self.model.sparse_names()

    def dense_optimizer_state(self) -> dict[str, tf.Variable]:
        return self.model.dense_optimizer_state()


class ElapsedTimeOnPs:
    """Loads ``aux`` from the server now and pushes it before each of ``main``'s commits."""

    def __init__(self, aux: ElapsedTimeModel, main: PsSync) -> None:
        if main.lanes:
            raise PsError("feedback.strategy: es_dfm cannot keep its elapsed-time model in writer lanes "
                          "(job.exactly_once at parallelism > 1)")
        self.aux, self.closed = aux, False
        self._seen = tf.Variable(np.zeros((2, 2), np.float32), trainable=False)
        self.syncs: list[PsSync] = []
        for head, model in (("dp", aux.dp), ("rn", aux.rn)):
            cfg = main.cfg.model_copy(update={"table_prefix": f"{main.cfg.table_prefix}es_dfm.{head}."})
            extra = {"seen": self._seen} if head == "dp" else {}
            self.syncs.append(PsSync(cast(ModelBase, _WithDense(model, extra)), cfg, aux.layout.buckets,
                                     single_writer=main.single_writer))
        aux.seen[:] = self._seen.numpy().astype(np.int64)
        main.before_commit.append(self.push)

    def touch(self, aux_ids: np.ndarray) -> None:
        """Before the auxiliary models learn rows with these id columns (:meth:`ElapsedTimeModel.aux_ids`)."""
        for sync in self.syncs:
            sync.before_step(aux_ids)

    def push(self) -> None:
        """Both models and the counts onto the server, waiting for them (the next commit holds them)."""
        if self.closed:
            return
        self._seen.assign(np.minimum(self.aux.seen, _MAX_COUNT).astype(np.float32))
        for sync in self.syncs:
            sync.sync(wait=True, commit=False)

    def close(self) -> None:
        """A last push (the main sync's final commit comes after it), then the connections close."""
        self.push()
        self.closed = True
        for sync in self.syncs:
            sync.client.close()
