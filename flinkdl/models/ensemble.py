"""Online model selection: several variants learn side by side; the best, or a mixture, is served.

``model.name: ensemble`` builds one model per ``model.ensemble.variants`` entry (by default the
configured model with its learning rates ×{1, ½, 2}, or e.g. LR/FM/DeepFM) and feeds every batch
to each of them. Each variant scores the batch before it learns it (its own prequential step), so
its losses are honest progressive losses. The served score is decided *before* the batch's labels
are seen, from the variants' log losses summed over past events with an exponential decay
(``half_life`` events): ``mixture`` serves ``Σ_k w_k p_k`` with ``w ∝ exp(−eta · L_k)``
(exponential weights; with ``eta`` = 1 this is the Bayesian mixture, whose log loss is within
``ln K`` of the best variant's on a fixed stream), ``best`` the least ``L_k``, ``first`` the first
variant (the others are shadow models).

Each variant's variables are named ``<id>.<name>``, so on the parameter server every variant has
its own tables (table prefix ``<id>.``); the selection state (``ensemble.loss``,
``ensemble.events``) is a dense variable like any other, so a restored ensemble serves as the
saved one did.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import tensorflow as tf

from flinkdl.config.ensemble import EnsembleConfig
from flinkdl.config.schema import ModelConfig
from flinkdl.evaluation.maths import log_losses
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase
from flinkdl.models.registry import build_model, register
from flinkdl.models.tensors import to_tensor

LOSS_VAR, EVENTS_VAR = "ensemble.loss", "ensemble.events"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` (nested dicts merged key by key)."""
    for k, v in over.items():
        base[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def variant_configs(cfg: ModelConfig) -> list[tuple[str, ModelConfig]]:
    """``(id, model config)`` of each variant of an ensemble's model section."""
    ens = cfg.ensemble or EnsembleConfig()
    base = cfg.model_dump(exclude={"ensemble"})
    base["name"] = ens.base
    out: list[tuple[str, ModelConfig]] = []
    for k, v in enumerate(ens.variants):
        mc = ModelConfig.model_validate(_merge(copy.deepcopy(base), v.model))
        if mc.name == "ensemble":
            raise ValueError(f"model.ensemble.variants[{k}]: an ensemble cannot be a variant")
        if v.lr_scale != 1.0:
            opt = mc.optimizer.model_copy(update={"learning_rate": mc.optimizer.learning_rate * v.lr_scale})
            dense = mc.dense_optimizer and mc.dense_optimizer.model_copy(
                update={"learning_rate": mc.dense_optimizer.learning_rate * v.lr_scale})
            mc = mc.model_copy(update={"optimizer": opt, "dense_optimizer": dense})
        out.append((v.id or f"{mc.name}_x{v.lr_scale:g}", mc))
    ids = [i for i, _ in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"model.ensemble.variants: ids {ids} are not distinct; give each an 'id'")
    return out


@register("ensemble")
class Ensemble(ModelBase):
    """The variants of ``cfg.ensemble``, trained on every batch; serves per ``cfg.ensemble.serve``."""

    wraps_models = True

    def __init__(self, layout: FeatureLayout, cfg: ModelConfig) -> None:
        super().__init__(layout, cfg)
        self.ens = cfg.ensemble or EnsembleConfig()
        self.configs = dict(variant_configs(cfg))
        self.members: dict[str, ModelBase] = {vid: build_model(layout, mc) for vid, mc in self.configs.items()}
        k = len(self.members)
        self.loss = self._add(LOSS_VAR, tf.zeros([k]))  # decayed sums of each variant's log loss
        self.events = self._add(EVENTS_VAR, tf.zeros([1]))  # decayed count of the events behind them
        self.last_scores: dict[str, np.ndarray] = {}  #: each variant's scores of the last batch
        self.last_weights = self.weights()  #: the weights the last batch was served with

    # ------------------------------------------------------------------ selection

    def weights(self) -> np.ndarray:
        """Serving weights now (float64 ``[K]``, summing to 1), from the state before the next batch."""
        return _weights(self.loss.numpy().astype(np.float64), self.ens.serve, self.ens.eta)

    def logits(self, ids: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        """Logit of the served score (used by ``predict``, export and serving)."""
        k = len(self.members)
        if self.ens.serve == "first":
            w = tf.one_hot(0, k)
        elif self.ens.serve == "best":
            w = tf.one_hot(tf.argmin(self.loss), k)
        else:
            w = tf.nn.softmax(-self.ens.eta * (self.loss - tf.reduce_min(self.loss)))
        p = tf.stack([tf.sigmoid(m.logits(ids, dense)) for m in self.members.values()], axis=1)
        p = tf.clip_by_value(tf.reduce_sum(p * w, axis=1), 1e-7, 1 - 1e-7)
        return tf.math.log(p) - tf.math.log1p(-p)

    def predict_then_train(self, ids: tf.Tensor, dense: tf.Tensor, labels: tf.Tensor,
                           labelled: np.ndarray | None = None, weights: np.ndarray | None = None) -> tf.Tensor:
        """Every variant's own prequential step (``weights``: its per-row loss weights); the served
        score mixes their pre-step scores with the weights of the state before this batch; then each
        variant's losses update the state."""
        w = self.weights()
        scores = {vid: m.predict_then_train(ids, dense, labels, labelled, weights).numpy()
                  for vid, m in self.members.items()}
        s = np.stack(list(scores.values()), axis=1)  # [B, K]
        served = (s.astype(np.float64) @ w).astype(np.float32)
        y = np.asarray(labels)
        mask = np.ones(len(y), bool) if labelled is None else np.asarray(labelled, bool)
        n = int(mask.sum())
        if n:
            pos = y[mask] > 0.5
            batch_loss = log_losses(pos[:, None], s[mask]).sum(axis=0)
            decay = 0.5 ** (n / self.ens.half_life)
            self.loss.assign((self.loss.numpy() * decay + batch_loss).astype(np.float32))
            self.events.assign(self.events.numpy() * decay + n)
            self._version.assign_add(1)
        self.last_scores, self.last_weights = scores, w
        return to_tensor(np.array(served, np.float32))  # a copy: TF shares its memory

    def variant_state(self) -> list[dict[str, Any]]:
        """Per variant: id, model, learning rate, serving weight now, decayed mean log loss."""
        w, loss, n = self.weights(), self.loss.numpy(), float(self.events.numpy()[0])
        return [{"id": vid, "model": mc.name, "learning_rate": mc.optimizer.learning_rate,
                 "weight": float(w[k]), "recent_logloss": float(loss[k] / n) if n else None}
                for k, (vid, mc) in enumerate(self.configs.items())]

    # ------------------------------------------------------------------ the variables of every variant

    def _prefixed(self, of: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for vid, m in self.members.items():
            out.update({f"{vid}.{name}": v for name, v in getattr(m, of)().items()})
        return out

    def variables(self) -> dict[str, tf.Variable]:
        """Every variant's variables as ``<id>.<name>``, and the selection state."""
        return {**self._prefixed("variables"), **self._vars}

    def sparse_names(self) -> frozenset[str]:
        return frozenset(f"{vid}.{n}" for vid, m in self.members.items() for n in m.sparse_names())

    def optimizers(self) -> tuple[tf.compat.v1.train.Optimizer, ...]:
        return tuple(opt for m in self.members.values() for opt in m.optimizers())

    def slot_variables(self) -> dict[str, tf.Variable]:
        return self._prefixed("slot_variables")

    def create_optimizer_state(self) -> None:
        for m in self.members.values():
            m.create_optimizer_state()

    def dense_optimizer_state(self) -> dict[str, tf.Variable]:
        return self._prefixed("dense_optimizer_state")


def _weights(loss: np.ndarray, serve: str, eta: float) -> np.ndarray:
    """Serving weights from the decayed loss sums (see the module docstring)."""
    w = np.zeros(len(loss))
    if serve == "first":
        w[0] = 1.0
    elif serve == "best":
        w[int(np.argmin(loss))] = 1.0
    else:
        z = np.exp(-eta * (loss - loss.min()))
        w = z / z.sum()
    return w
