"""Logistic regression's Adagrad step as one XLA-compiled function (``model.xla_step``, by default where it applies).

The generic step (:class:`~flinkdl.models.base.ModelBase`) is a gradient tape and a ``tf.compat.v1``
optimizer: TensorFlow kernels for the lookup's two gathers, the gradient's segment sum and the sparse
Adagrad apply, each with its per-row overhead (a table of one float per row costs as much per row as a
wide one). Here the same maths is written out and compiled by XLA, which fuses it into a few loops:
8-13 % less CPU per LR step on the click stream as a worker runs it, 29 % with steps back to back
(docs/BENCHMARKS.md).

Only the distinct ids stay outside XLA (``tf.unique`` has no XLA kernel). XLA compiles one program per
input shape, and both the number of distinct ids and the number of rows change from batch to batch (a
Kafka batch, the labelled rows of a batch), so both are padded up to one of a few sizes per octave
(:func:`padded`): the distinct ids with an id past the table's end (XLA's scatter skips such rows, its
gather reads a row nobody uses), the rows with rows of weight 0 pointing at such an id. At most
:data:`MAX_PROGRAMS` shapes are compiled; a batch of yet another shape, or of fewer than :data:`MIN_ROWS`
rows (where padding and the call cost more than XLA saves), takes the generic step (same maths); a rare
shape runs padded further, in a larger program compiled already. The
optimizer state is the v1 Adagrad optimizer's own accumulators (created at the first step, as the generic
step does), so the parameter-server sync, which reads the model's variables and slots, sees the usual state.

Same formulas as the kernels (``ResourceSparseApplyAdagrad``: ``acc += g²; w -= lr·g/√acc`` per row;
``ResourceApplyAdagrad`` for the dense weights and the bias: ``w -= g·lr·acc^-½``), but XLA orders the
float operations its own way: scores and weights equal the generic step's to float32 rounding
(≤ 1e-6 on the click stream, tests/models/test_xla_lr.py), not bit for bit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import tensorflow as tf

from flinkdl.config.schema import ModelConfig

if TYPE_CHECKING:
    from flinkdl.config.schema import JobConfig
    from flinkdl.models.lr import LogisticRegression

log = logging.getLogger(__name__)

#: batches of fewer rows take the generic step: the padding and the XLA call cost more than they save there
#: (random 1-512-row batches: 1.7x the generic step's CPU per event; 512 rows: even; 4096 rows: -8 to -13 %)
MIN_ROWS = 512
#: the fewest padded distinct ids and rows: smaller batches share their programs
LEAST_IDS, LEAST_ROWS = 4096, 64
#: the most programs (input shapes) compiled; a batch of another shape takes the generic step
MAX_PROGRAMS = 16
#: a new shape's first batches (this many) run in a larger program compiled already, where there is one
RECUR = 4
#: why a job with synchronous steps does not take it (their steps are gradient exchanges, parallel/sync_step.py)
SYNC_STEPS = "no parallel.sync_steps at job.parallelism > 1 (its steps exchange the generic step's gradients)"
#: why ``auto`` keeps the generic step on a GPU (``true`` compiles it there all the same)
ON_GPU = "worker.device cpu under auto (measured on CPU only; model.xla_step: true compiles it for the GPU)"


def padded(n: int, least: int) -> int:
    """``n`` rounded up to one of four sizes per octave (at most 25 % more), and to at least ``least``.

    >>> [padded(n, 64) for n in (1, 64, 65, 100, 512, 4096, 4097, 20000, 24000)]
    [64, 64, 80, 112, 512, 4096, 5120, 20480, 24576]
    """
    if n <= least:
        return least
    step = 1 << max(0, (n - 1).bit_length() - 3)
    return -(-n // step) * step


def unsupported(cfg: ModelConfig, has_bags: bool, *, sync_steps: bool = False) -> str | None:
    """Why the XLA step cannot serve this LR (None: it can); ``sync_steps``: the job steps synchronously."""
    opt, dense = cfg.optimizer, cfg.dense_optimizer or cfg.optimizer
    if opt.name != "adagrad" or dense != opt:
        return "one adagrad optimizer for every variable (dense_optimizer null)"
    if opt.l2 > 0 or opt.accumulator_decay < 1 or opt.max_accumulator is not None:
        return "plain adagrad (no l2, accumulator_decay or max_accumulator)"
    if cfg.micro_batch_rows is not None or cfg.fresh_scores or cfg.linear_lr_scale != 1.0:
        return "one step a batch (micro_batch_rows null), no fresh_scores, linear_lr_scale 1"
    if has_bags:
        return "single-valued id fields (no bags)"
    if cfg.target_stats is not None:
        return "no target_stats (its inputs and counts are the generic step's)"
    if sync_steps:
        return SYNC_STEPS
    return None


def for_job(cfg: JobConfig) -> ModelConfig:
    """``cfg.model`` as the worker builds it: ``xla_step`` auto turned off where the job around the model rules
    the XLA step out (logged); ValueError where ``xla_step: true`` meets such a job."""
    sync = cfg.parallel.sync_steps and cfg.job.parallelism > 1
    why = SYNC_STEPS if sync else ON_GPU if cfg.worker.device.startswith("GPU") else None
    if why is None or cfg.model.xla_step is False or (cfg.model.xla_step is True and not sync):
        return cfg.model
    if cfg.model.xla_step is True:
        raise ValueError(f"model.xla_step needs {why}")
    log.info("model.xla_step=auto: the generic step (the XLA step needs %s)", why)
    return cfg.model.model_copy(update={"xla_step": False})


def choose(model: LogisticRegression) -> XlaLrStep | None:
    """``model.xla_step`` settled for this LR: its XLA step, or None for the generic step (auto: logged why);
    ValueError where ``xla_step: true`` cannot be served."""
    setting = model.cfg.xla_step
    if setting is False:
        return None
    why = unsupported(model.cfg, bool(model.layout.bags))
    if why is None:
        log.info("model.xla_step=%s: lr takes its XLA-compiled step", str(setting).lower())
        return XlaLrStep(model)
    if setting is True:
        raise ValueError(f"model.xla_step needs {why}")
    log.info("model.xla_step=auto: lr takes the generic step (the XLA step needs %s)", why)
    return None


class XlaLrStep:
    """``step(ids, dense, labels[, weights])`` → pre-update scores (None: fewer than :data:`MIN_ROWS` rows or a
    shape beyond :data:`MAX_PROGRAMS`, nothing done: the generic step's); updates ``model`` and its version."""

    def __init__(self, model: LogisticRegression) -> None:
        self.model, self.lr = model, float(model.cfg.optimizer.learning_rate)
        self.slots: list[tf.Variable] = []  # the optimizer's accumulators, made at the first step
        #: the (padded distinct ids, padded rows) compiled so far: one XLA program each
        self.shapes: set[tuple[int, int]] = set()
        self._seen: dict[tuple[int, int], int] = {}  # batches of each shape not compiled (yet)
        self._sizes: dict[int, tf.Tensor] = {}
        n_ids, n_dense = model.layout.n_ids, model.layout.n_dense
        self._unique = tf.function(lambda ids: tf.unique(tf.reshape(ids, [-1])),
                                   input_signature=[tf.TensorSpec([None, n_ids], tf.int64)])
        core = [tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, n_dense], tf.float32), tf.TensorSpec([None], tf.float32)]
        size = tf.TensorSpec([], tf.int32)
        self._core = tf.function(self._update, input_signature=[*core, core[3]], jit_compile=True)
        self._step = tf.function(self._padded, input_signature=[*core, size, size])
        self._wstep = tf.function(self._padded, input_signature=[*core, core[3], size, size])

    def __call__(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                 weights: tf.Tensor | None = None) -> tf.Tensor | None:
        if int(labels.shape[0]) < MIN_ROWS:
            return None
        distinct, where = self._unique(ids)
        shape = self._program((padded(int(distinct.shape[0]) + 1, LEAST_IDS), padded(int(labels.shape[0]), LEAST_ROWS)))
        if shape is None:
            return None
        if not self.slots:
            self.model.create_optimizer_state()
            (opt,) = self.model.optimizers()
            self.slots = [opt.get_slot(v, "accumulator") for v in (self.model.w, self.model.w_dense, self.model.bias)]
        sizes = [self._sizes.setdefault(k, tf.constant(k, tf.int32)) for k in shape]
        if weights is None:
            return self._step(distinct, where, dense, labels, *sizes)
        return self._wstep(distinct, where, dense, labels, weights, *sizes)

    def _program(self, shape: tuple[int, int]) -> tuple[int, int] | None:
        """The compiled shape a batch of padded ``shape`` runs in (None: the generic step's batch). A new shape
        that a compiled one holds is compiled at its batch number :data:`RECUR` + 1: until then the smallest
        compiled shape that holds it takes it (a few steps' padding cost less than a compile: a stream's last,
        partial batch compiles nothing)."""
        if shape in self.shapes:
            return shape
        self._seen[shape] = seen = self._seen.get(shape, 0) + 1
        cover = min((s for s in self.shapes if s[0] >= shape[0] and s[1] >= shape[1]),
                    key=lambda s: s[0] * s[1], default=None)
        if cover is not None and (seen <= RECUR or len(self.shapes) >= MAX_PROGRAMS):
            return cover
        if len(self.shapes) >= MAX_PROGRAMS:
            return None
        self.shapes.add(shape)
        return shape

    def _padded(self, distinct: tf.Tensor, where: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                *rest: tf.Tensor) -> tf.Tensor:
        """The compiled step on the batch padded to ``rest[-2:]`` (distinct ids, rows); ``rest[:-2]``: weights."""
        n_ids, n_rows = rest[-2:]
        rows, n = tf.shape(labels)[0], tf.shape(distinct)[0]
        weights = rest[0] if len(rest) == 3 else tf.ones_like(labels)
        extra = [[0, n_rows - rows]]
        pad_id = tf.constant(self.model.layout.buckets, tf.int64)  # past the table's end
        scores = self._core(tf.concat([distinct, tf.fill([n_ids - n], pad_id)], 0),
                            tf.concat([where, tf.fill([(n_rows - rows) * self.model.layout.n_ids], n)], 0),
                            tf.pad(dense, [*extra, [0, 0]]), tf.pad(labels, extra), tf.pad(weights, extra))[:rows]
        with tf.control_dependencies([scores]):
            self.model._version.assign_add(1)
            return tf.identity(scores)

    def _update(self, distinct: tf.Tensor, where: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                weights: tf.Tensor) -> tf.Tensor:
        """The step on a padded batch: its padded rows (weight 0) point at the first padded id."""
        m = self.model
        acc_w, acc_u, acc_b = self.slots
        rows = tf.gather(m.w, distinct)  # [D, 1]; a padded id reads some row, written nowhere
        batch, fields = tf.shape(labels)[0], m.layout.n_ids
        logits = (tf.reduce_sum(tf.reshape(tf.gather(rows[:, 0], where), [batch, fields]), axis=1)
                  + tf.matmul(dense, m.w_dense)[:, 0] + m.bias[0])
        scores = tf.sigmoid(logits)
        g = (scores - labels) * weights  # d(Σ weight · logloss) / d logit
        g_rows = tf.math.unsorted_segment_sum(tf.reshape(tf.tile(g[:, None], [1, fields]), [-1]), where,
                                              tf.shape(distinct)[0])[:, None]
        acc = tf.gather(acc_w, distinct) + g_rows * g_rows
        acc_w.scatter_update(tf.IndexedSlices(acc, distinct))  # padded ids: out of range, skipped
        m.w.scatter_update(tf.IndexedSlices(rows - self.lr * g_rows / tf.sqrt(acc), distinct))
        for var, slot, grad in ((m.w_dense, acc_u, tf.matmul(dense, g[:, None], transpose_a=True)),
                                (m.bias, acc_b, tf.reduce_sum(g)[None])):
            slot.assign_add(grad * grad)
            var.assign_sub(grad * self.lr * tf.math.rsqrt(slot))
        return scores
