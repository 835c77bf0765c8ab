"""The optimizers of a model's tables and dense variables (``tf.compat.v1.train``, sparse-aware)."""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.schema import OptimizerConfig
from flinkdl.models.decayed_adagrad import DecayedAdagradOptimizer


def make_optimizer(cfg: OptimizerConfig) -> tf.compat.v1.train.Optimizer:
    """A ``tf.compat.v1.train`` optimizer (sparse-aware) for ``cfg``.

    ``l2`` > 0 selects the proximal variant of Adagrad / SGD (``l2_regularization_strength``),
    FTRL takes it directly. The l2 acts only on rows a step touches (lazy, as is usual for
    sparse tables).
    """
    lr, l2, acc = cfg.learning_rate, cfg.l2, cfg.initial_accumulator
    v1 = tf.compat.v1.train
    if cfg.name == "adagrad":
        if cfg.accumulator_decay < 1 or cfg.max_accumulator is not None:
            if l2 > 0:
                raise ValueError("model optimizer: l2 with accumulator_decay / max_accumulator is not supported")
            return DecayedAdagradOptimizer(lr, acc, cfg.accumulator_decay, cfg.max_accumulator)
        if l2 > 0:
            return v1.ProximalAdagradOptimizer(lr, acc, l2_regularization_strength=l2)
        return v1.AdagradOptimizer(lr, acc)
    if cfg.name == "ftrl":
        return v1.FtrlOptimizer(lr, l2_regularization_strength=l2)
    if cfg.name == "sgd":
        if l2 > 0:
            return v1.ProximalGradientDescentOptimizer(lr, l2_regularization_strength=l2)
        return v1.GradientDescentOptimizer(lr)
    if cfg.name == "adam":  # dense variables only: v1 Adam decays its slots over the whole table
        return v1.AdamOptimizer(lr)
    raise ValueError(f"unknown optimizer {cfg.name!r} (known: adagrad, ftrl, sgd, adam)")


def create_slots(opt: tf.compat.v1.train.Optimizer, var_list: list[tf.Variable]) -> None:
    """Create ``opt``'s slots (and its own variables) for ``var_list`` without a step.

    ``tf.compat.v1.train.Optimizer`` creates them only inside ``apply_gradients``, and a step
    with zero gradients is not neutral for every optimizer (FTRL recomputes the weights, Adam
    advances its beta powers). Its private ``_create_slots`` is the one way: kept to this function.
    """
    opt._create_slots(var_list)


def scale_gradient(g: tf.Tensor | tf.IndexedSlices, s: tf.Tensor) -> tf.Tensor | tf.IndexedSlices:
    """``g * s``, keeping a sparse gradient sparse."""
    if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(g.values * s, g.indices, g.dense_shape)
    return g * s


class OptimizedVariables:
    """A model's variables and the optimizers that update them (mixed into :class:`~flinkdl.models.base.ModelBase`).

    ``_vars`` (by name), ``_sparse`` (the row-wise updated tables) and ``_groups`` (config, optimizer, which
    variables: True = tables, False = dense, None = all) are set by the model; ``no_slots`` names variables
    that no optimizer updates.
    """

    _vars: dict[str, tf.Variable]
    _sparse: set[str]
    _groups: list[tuple[OptimizerConfig, tf.compat.v1.train.Optimizer, bool | None]]
    no_slots: frozenset[str] = frozenset()

    def optimizers(self) -> tuple[tf.compat.v1.train.Optimizer, ...]:
        """The optimizers (one, or sparse then dense); trackable by ``tf.train.Checkpoint``."""
        return tuple(opt for _, opt, _ in self._groups)

    def slot_variables(self) -> dict[str, tf.Variable]:
        """Optimizer state (e.g. Adagrad accumulators) as ``"<var>/<slot>"``; empty before the first step."""
        out: dict[str, tf.Variable] = {}
        for _, opt, _ in self._groups:
            for slot in opt.get_slot_names():
                for name, var in self._vars.items():
                    s = opt.get_slot(var, slot)
                    if s is not None:
                        out[f"{name}/{slot}"] = s
        return out

    def create_optimizer_state(self) -> None:
        """Create every optimizer slot now, changing nothing (v1 optimizers do it on the first step).

        The parameter server then sees the whole state from the start, and a model restored
        from it continues exactly where the saved one was (see docs/EXACTLY_ONCE.md).
        """
        for _, opt, sparse in self._groups:
            owned = [v for n, v in self._vars.items()
                     if (sparse is None or (n in self._sparse) == sparse) and n not in self.no_slots]
            create_slots(opt, owned)

    def dense_optimizer_state(self) -> dict[str, tf.Variable]:
        """Slots of the dense variables and each optimizer's own variables (e.g. Adam's beta powers),
        as ``"<var>/<slot>"`` and ``"optimizer<k>/<name>"``; call :meth:`create_optimizer_state` first."""
        slots = self.slot_variables()
        out = {k: v for k, v in slots.items() if k.rsplit("/", 1)[0] not in self._sparse}
        slot_ids = {id(v) for v in slots.values()}
        for k, (_, opt, _) in enumerate(self._groups):
            for v in opt.variables():  # slots and the optimizer's own variables, sorted by name
                if id(v) not in slot_ids:
                    out[f"optimizer{k}/{v.name.split(':')[0]}"] = v
        return out

    def apply_gradients(self, grads: list, rows: tf.Tensor) -> list:
        """The ops applying ``grads`` (one per :meth:`variables` entry, in order; None: no gradient) of
        the logloss *summed* over ``rows`` rows (plain SGD divides by ``rows``)."""
        names = list(self._vars)
        inv_batch = 1.0 / tf.maximum(rows, 1.0)
        updates = []
        for opt_cfg, opt, sparse in self._groups:
            pairs = [
                (scale_gradient(g, inv_batch) if opt_cfg.name == "sgd" else g, self._vars[n])
                for n, g in zip(names, grads, strict=True)
                if g is not None and (sparse is None or (n in self._sparse) == sparse)
            ]
            if pairs:
                updates.append(opt.apply_gradients(pairs))
        return updates
