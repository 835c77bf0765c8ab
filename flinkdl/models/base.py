"""The model contract: logits from (hashed ids, dense floats), trained prequentially.

A model subclasses :class:`ModelBase`, creates its variables in ``__init__`` with
:meth:`ModelBase.table` (sparse ``[buckets, dim]`` tables, updated row-wise) and
:meth:`ModelBase.dense_var`, and implements :meth:`ModelBase.logits`. The base owns the
optimizers and the single ``tf.function`` training step.

Embedding tables are plain ``tf.Variable`` read with :func:`lookup` (a gather of the batch's
distinct ids) so their gradients are ``IndexedSlices``, and they are updated by
``tf.compat.v1.train`` optimizers, which apply those sparsely: a step costs O(rows in the batch),
not O(table). (Keras 3 optimizers touch whole tables: far slower here, docs/DESIGN.md.)

Loss: the batch *sum* of logloss. Adagrad and FTRL normalise per coordinate, so with the sum
a row seen once moves about ``learning_rate`` whatever the batch size; with the mean and the
default initial accumulator of 0.1 rare ids would barely learn in big batches. Plain SGD is
not normalised, so its gradients are divided by the batch size (its ``learning_rate`` is per
batch mean, as usual). Optional per-row loss weights (``predict_then_train(..., weights=)``, e.g. the
importance weights of delayed-feedback correction) multiply each row's logloss; without them the
step is the unweighted one, bit for bit (its own ``tf.function``).
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import tensorflow as tf

from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import in_batch
from flinkdl.models.distinct import skip_known_distinct
from flinkdl.models.optim import OptimizedVariables, create_slots, make_optimizer
from flinkdl.models.target_stats import TABLE, TOTAL, TargetStats, n_features
from flinkdl.models.tensors import to_tensor


def lookup(table: tf.Variable, ids: tf.Tensor) -> tf.Tensor:
    """``tf.nn.embedding_lookup(table, ids)`` (``[*ids.shape, dim]``), reading each distinct id once.

    The gradient is then ``IndexedSlices`` over the distinct ids, which the sparse optimizer no
    longer has to deduplicate: less CPU per step, same scores to the bit (docs/BENCHMARKS.md).
    """
    flat = tf.reshape(ids, [-1])
    distinct, where = tf.unique(flat)
    rows = in_batch.adjust(table, flat, tf.gather(tf.gather(table, distinct), where))  # no-op unless fresh_scores
    return tf.reshape(rows, tf.concat([tf.shape(ids), table.shape[1:].as_list()], axis=0))  # no table read


class ModelBase(OptimizedVariables, abc.ABC):
    """Binary classifier over a :class:`FeatureLayout`; subclasses implement :meth:`logits`."""

    name: ClassVar[str] = ""
    #: TensorFlow threads per op when ``worker.intra_op_threads`` is 0 (0: TensorFlow's default)
    intra_op_threads: ClassVar[int] = 0
    #: a model made of other models (ensemble, dynamic ids): they count ``model.target_stats``, not it
    wraps_models: ClassVar[bool] = False
    no_slots = frozenset((TABLE, TOTAL))  # the target statistics' counts: no gradient, no optimizer state

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        self.layout, self.cfg = layout, cfg
        self._vars: dict[str, tf.Variable] = {}
        self._sparse: set[str] = set()
        self._n_init = 0
        self._version = tf.Variable(0, dtype=tf.int64, trainable=False, name="version")
        #: a subclass's own compiled step (``model.xla_step``): ``(ids, dense, labels[, weights])`` → scores,
        #: or None where it leaves a batch to the generic step
        self._fast_step: Callable[..., tf.Tensor | None] | None = None
        stats_cfg = None if self.wraps_models else cfg.target_stats
        #: dense inputs of the model: the batch's dense columns, then the per-id statistics (if any)
        self.n_dense = layout.n_dense + n_features(stats_cfg, layout.n_single)
        self.target_stats = None if stats_cfg is None else TargetStats(self, stats_cfg)
        dense_cfg = cfg.dense_optimizer or cfg.optimizer
        # (config, optimizer, which vars): True = tables, False = dense vars, None = all
        self._groups: list[tuple[OptimizerConfig, tf.compat.v1.train.Optimizer, bool | None]]
        if dense_cfg == cfg.optimizer:  # one optimizer for everything
            self._groups = [(cfg.optimizer, make_optimizer(cfg.optimizer), None)]
        else:
            self._groups = [
                (cfg.optimizer, make_optimizer(cfg.optimizer), True),
                (dense_cfg, make_optimizer(dense_cfg), False),
            ]
        for _, opt, _ in self._groups:  # a lookup's gradient is deduplicated already: not twice
            skip_known_distinct(opt)
        specs = (
            tf.TensorSpec([None, layout.n_ids], tf.int64, name="ids"),
            tf.TensorSpec([None, layout.n_dense], tf.float32, name="dense"),
        )
        opts = {"jit_compile": False, "reduce_retracing": True}
        train_specs = (*specs, tf.TensorSpec([None], tf.float32, name="labels"))
        self._predict_fn = tf.function(self._predict, input_signature=specs, **opts)
        self._step_fn = tf.function(self._step, input_signature=train_specs, **opts)
        # micro-batches: the slice is cut inside the graph (an eager ``t[a:b]`` per slice leaks
        # memory; docs/BENCHMARKS.md, soak)
        slice_specs = (*train_specs, tf.TensorSpec([], tf.int32, name="start"),
                       tf.TensorSpec([], tf.int32, name="size"))
        self._train_fn = tf.function(self._train, input_signature=slice_specs, **opts)
        self._train_last_fn = tf.function(self._train_last, input_signature=slice_specs, **opts)
        # batches with unlabelled rows: split (in the graph) into scored-only and trained rows
        mask_spec = tf.TensorSpec([None], tf.bool, name="mask")
        self._split_fn = tf.function(self._split, input_signature=(*train_specs, mask_spec), **opts)
        at_spec, score_spec = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)
        self._stitch_fn = tf.function(self._stitch, input_signature=(at_spec, score_spec, at_spec, score_spec),
                                      **opts)
        # per-row loss weights: their own functions, traced only when a weighted batch comes
        w_specs = (*train_specs, tf.TensorSpec([None], tf.float32, name="weights"))
        self._wstep_fn = tf.function(self._step, input_signature=w_specs, **opts)
        self._wtrain_fn = tf.function(self._train, input_signature=(*w_specs, *slice_specs[3:]), **opts)
        self._wtrain_last_fn = tf.function(self._train_last, input_signature=(*w_specs, *slice_specs[3:]), **opts)

    # ------------------------------------------------------------------ for subclasses

    def _init_seed(self) -> tuple[int, int]:
        self._n_init += 1
        return (self.cfg.seed, self._n_init)

    def table(self, name: str, dim: int, stddev: float = 0.01) -> tf.Variable:
        """A sparse ``[buckets, dim]`` table, normal(0, stddev) (zeros if ``stddev`` is 0)."""
        shape = (self.layout.buckets, dim)
        init = (
            tf.random.stateless_normal(shape, seed=self._init_seed(), stddev=stddev)
            if stddev > 0
            else tf.zeros(shape)
        )
        self._sparse.add(name)
        return self._add(name, init)

    def dense_var(self, name: str, shape: tuple[int, ...], init: str = "zeros") -> tf.Variable:
        """A dense variable; ``init`` is ``zeros``, ``ones`` or ``glorot`` (uniform, for a 2-D kernel)."""
        if init == "glorot":
            fan_in, fan_out = shape[0], shape[-1]
            limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
            value = tf.random.stateless_uniform(shape, seed=self._init_seed(), minval=-limit, maxval=limit)
        elif init in ("zeros", "ones"):
            value = tf.zeros(shape) if init == "zeros" else tf.ones(shape)
        else:
            raise ValueError(f"unknown init {init!r} (known: zeros, ones, glorot)")
        return self._add(name, value)

    def _add(self, name: str, value: tf.Tensor) -> tf.Variable:
        if name in self._vars:
            raise ValueError(f"variable {name!r} defined twice")
        var = tf.Variable(value, dtype=tf.float32, name=name)
        self._vars[name] = var
        return var

    @abc.abstractmethod
    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """ids int64 ``[B, n_ids]`` (< buckets), dense float32 ``[B, n_dense]`` → float32 ``[B]``."""

    # ------------------------------------------------------------------ provided

    def predict(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """``sigmoid(logits)``, float32 ``[B]``; no update."""
        return self._predict_fn(ids, dense)

    def predict_then_train(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                           labelled: np.ndarray | None = None, weights: np.ndarray | None = None) -> tf.Tensor:
        """Score the batch, then learn from it. Returns the scores, each made before the model
        learnt from its event.

        ``labelled`` (bool per row; ``None``: every row) names the rows to learn from. The other
        rows are scored with the model as it is before the step and change nothing, not even
        optimizer statistics: the step is exactly a step on the labelled rows alone. A batch
        whose every row is labelled takes the same computation as without ``labelled``; one with
        no labelled row is only scored (``version`` does not move).

        With ``model.micro_batch_rows`` = m and a batch of more than m rows, the batch is learnt
        in consecutive steps of at most m rows, each slice scored just before its own step
        (exactly as if the batch had come as slices of m rows). The number of steps, not how
        big a batch is, is what a big batch costs in quality: on the drift stream, 4096-row
        batches learnt in 512-row steps reach the AUC of 512-row batches (docs/BENCHMARKS.md)
        while the job still moves 4096-row batches (its per-batch costs stay amortised).

        ``weights`` (float per row; ``None``: the unweighted step) multiply each row's logloss.
        """
        if labelled is not None and not labelled.all():
            return self._score_then_train_labelled(ids, dense, labels, labelled, weights)
        m, n = self.cfg.micro_batch_rows, int(labels.shape[0])
        w = () if weights is None else (to_tensor(np.array(weights, np.float32)),)  # a copy: TF shares memory
        if self._fast_step is not None and (fast := self._fast_step(ids, dense, labels, *w)) is not None:
            return fast
        step, train, last = ((self._step_fn, self._train_fn, self._train_last_fn) if weights is None
                             else (self._wstep_fn, self._wtrain_fn, self._wtrain_last_fn))
        if m is None or n <= m:
            return step(ids, dense, labels, *w)
        size, starts = self._slice_starts(n, m)
        scores = [train(ids, dense, labels, *w, start, size) for start in starts[:-1]]
        scores.append(last(ids, dense, labels, *w, starts[-1], size))  # + version, in the graph
        return tf.concat(scores, axis=0)

    def _score_then_train_labelled(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                                   labelled: np.ndarray, weights: np.ndarray | None = None) -> tf.Tensor:
        """Score the unlabelled rows, then :meth:`predict_then_train` the labelled ones; scores in row order."""
        mask = to_tensor(np.array(labelled, bool))  # a copy: TF shares its memory
        ids_u, dense_u, _, at_u = self._split_fn(ids, dense, labels, tf.logical_not(mask))
        scores_u = self._predict_fn(ids_u, dense_u)  # runs (eagerly) before the step below
        if not labelled.any():
            return scores_u
        ids_l, dense_l, labels_l, at_l = self._split_fn(ids, dense, labels, mask)
        weights_l = None if weights is None else np.asarray(weights)[np.asarray(labelled, bool)]
        scores_l = self.predict_then_train(ids_l, dense_l, labels_l, weights=weights_l)
        return self._stitch_fn(at_l, scores_l, at_u, scores_u)

    @staticmethod
    def _split(ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
               mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """The rows where ``mask`` is true (ids, dense, labels) and their positions in the batch."""
        at = tf.cast(tf.reshape(tf.where(mask), [-1]), tf.int32)
        return tf.gather(ids, at), tf.gather(dense, at), tf.gather(labels, at), at

    @staticmethod
    def _stitch(at_a: tf.Tensor, a: tf.Tensor, at_b: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.dynamic_stitch([at_a, at_b], [a, b])

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one model per worker process, lives as long
    def _slice_starts(self, n: int, m: int) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """The micro-batch slices of an ``n``-row batch as int32 tensors (made once per batch size:
        new constants on every batch would leak)."""
        return tf.constant(m, tf.int32), [tf.constant(s, tf.int32) for s in range(0, n, m)]

    @property
    def version(self) -> int:
        """Number of batches learnt (``predict_then_train`` calls with a labelled row), micro-batched or not."""
        return int(self._version.numpy())

    def variables(self) -> dict[str, tf.Variable]:
        """Model variables by name (tables and dense), not optimizer slots."""
        return dict(self._vars)

    def sparse_names(self) -> frozenset[str]:
        """Names of the row-wise updated ``[buckets, dim]`` tables."""
        return frozenset(self._sparse)

    def _inputs(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """The dense inputs of :meth:`logits`: ``dense``, then the per-id statistics as they are."""
        if self.target_stats is None:
            return dense
        return tf.concat([dense, self.target_stats.features(ids)], axis=1)

    def _predict(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(self.logits(ids, self._inputs(ids, dense)))

    def _step(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
              weights: tf.Tensor | None = None) -> tf.Tensor:
        scores, updates = self._update(ids, dense, labels, weights)
        with tf.control_dependencies(updates):
            self._version.assign_add(1)
            return tf.identity(scores)

    def _train(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor, *rest: tf.Tensor) -> tf.Tensor:
        """One micro-batch step on rows ``[start, start + size)`` of the batch; ``rest``:
        ``(start, size)`` or ``(weights, start, size)``."""
        start, size = rest[-2:]
        weights = rest[0][start:start + size] if len(rest) == 3 else None
        ids, dense, labels = ids[start:start + size], dense[start:start + size], labels[start:start + size]
        scores, updates = self._update(ids, dense, labels, weights)
        with tf.control_dependencies(updates):
            return tf.identity(scores)

    def _train_last(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor, *rest: tf.Tensor) -> tf.Tensor:
        """The batch's last micro-batch step, which also counts the batch in ``version``."""
        scores = self._train(ids, dense, labels, *rest)
        with tf.control_dependencies([scores]):
            self._version.assign_add(1)
            return tf.identity(scores)

    def _earlier_steps(self, records: list, grads: list) -> list[tf.Tensor | None]:
        """Per recorded lookup, the shift of its rows by the batch's earlier rows (None: not an adagrad table)."""
        out: list[tf.Tensor | None] = []
        for (table, ids, _), g in zip(records, grads, strict=True):
            group = next((c, o) for c, o, sp in self._groups if sp is None or sp)  # tables: first group
            if g is None or group[0].name != "adagrad":
                out.append(None)
                continue
            with tf.init_scope():
                create_slots(group[1], [table])
            acc = tf.gather(group[1].get_slot(table, "accumulator"), ids)
            out.append(in_batch.earlier_steps(g, ids, acc, group[0].learning_rate))
        return out

    def _update(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                weights: tf.Tensor | None = None) -> tuple[tf.Tensor, list]:
        """Pre-update scores and the ops that apply the (per-row ``weights``-weighted) logloss gradients."""
        names = list(self._vars)
        var_list = [self._vars[n] for n in names]
        records: list = []
        dense = self._inputs(ids, dense)
        with tf.GradientTape() as tape, in_batch.probe(tape, records, self.cfg.fresh_scores):
            logits = self.logits(ids, dense)
            row_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            loss = tf.reduce_sum(row_loss if weights is None else row_loss * weights)
        grads = tape.gradient(loss, var_list + [off for _, _, off in records])
        grads, occurrence_grads = grads[:len(var_list)], grads[len(var_list):]
        if records:
            with in_batch.shifted(self._earlier_steps(records, occurrence_grads)):
                logits = self.logits(ids, dense)
        scores = tf.sigmoid(logits)  # reads happen before the updates below (auto control deps)
        updates = self.apply_gradients(grads, tf.cast(tf.shape(labels)[0], tf.float32))
        if self.target_stats is not None:  # counted after this step's rows were scored
            updates += self.target_stats.update(ids, labels)
        return scores, updates
