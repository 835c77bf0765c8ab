"""ES-DFM: elapsed-time sampling with importance weights (Yang et al., AAAI 2021).

An impression is trained ``e`` after it arrived (``e`` = ``feedback.es_dfm.elapsed_s`` plus the time
to its batch; ``0``: on arrival, as ``fake_negative``): as a positive if its click came by then,
else as a negative; a click that comes later (within the window) is trained again as a positive
(the duplicate). With ``p`` the click probability and ``p_dp(x, e)`` the probability that the
click comes after ``e`` (a *delayed positive*: a fake negative, later duplicated), the observed
distribution is ``q(1|x) = p / (1 + p_dp)`` and ``q(0|x) = (1 - p + p_dp) / (1 + p_dp)``. The loss
weights that make the expected loss the one under ``p`` (the paper's importance weights) are

    w+ = 1 + p_dp                    for every positive (trained once, or the duplicate)
    w- = (1 + p_dp) * p_rn           for every negative, p_rn = (1 - p) / (1 - p + p_dp)

``p_rn`` is the probability that an observed negative is a real negative. Both come from
:class:`ElapsedTimeModel`, two logistic regressions over the row's hashed ids, dense features and
a bucket of ``e``, trained online on the stream as the labels become known: ``p_dp`` on every
impression (1: clicked after ``e`` within the window), ``p_rn`` on the observed negatives (1: no
click within the window). Until both have learnt from ``warmup_labels`` rows of each label, the
weights are 1 (an untrained model's 0.5 would weigh every positive 1.5). Without delays
(``p_dp = 0``, ``p_rn = 1``) every weight is 1: plain training.

>>> import numpy as np
>>> w = esdfm_weights(np.array([1.0, 0.0]), np.array([0.2, 0.2]), np.array([0.5, 0.5]))
>>> [round(float(x), 3) for x in w]
[1.2, 0.6]
>>> elapsed_bucket(np.array([0, 999, 1000, 3000, 10**9]), 8).tolist()
[0, 0, 1, 2, 7]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flinkdl.config.esdfm import EsDfmConfig
from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.hashing import field_seed, murmur3_32_int64

if TYPE_CHECKING:
    from flinkdl.models.base import ModelBase


def esdfm_weights(labels: np.ndarray, p_dp: np.ndarray, p_rn: np.ndarray) -> np.ndarray:
    """Per-row loss weights (float32): ``1 + p_dp`` for a positive (label ≥ 0.5), ``(1 + p_dp) p_rn`` else."""
    pos = np.asarray(labels) >= 0.5
    one_plus = 1.0 + np.asarray(p_dp, np.float64)
    return np.where(pos, one_plus, one_plus * np.asarray(p_rn, np.float64)).astype(np.float32)


def elapsed_bucket(elapsed_ms: np.ndarray, n: int) -> np.ndarray:
    """Bucket of each elapsed time (int64 in ``[0, n)``): 0 below 1 s, ``k`` for ``[2^(k-1), 2^k)`` s."""
    s = np.maximum(np.asarray(elapsed_ms, np.float64), 0.0) / 1000.0
    k = np.where(s < 1.0, 0, np.floor(np.log2(np.maximum(s, 1.0))) + 1)
    return np.minimum(k, n - 1).astype(np.int64)


class ElapsedTimeModel:
    """The two auxiliary classifiers ``p_dp(x, e)`` and ``p_rn(x, e)`` (see the module docstring).

    Each is the project's ``lr`` model (adagrad) over the main model's layout plus one id column:
    the hashed elapsed-time bucket (placed before the bags, which stay the last columns).
    """

    def __init__(self, layout: FeatureLayout, cfg: EsDfmConfig, seed: int = 0) -> None:
        from flinkdl.models.registry import build_model

        self.cfg, self.n_single = cfg, layout.n_single
        self.layout = FeatureLayout(layout.n_ids + 1, layout.n_dense, layout.buckets, layout.bags)
        model_cfg = ModelConfig(name="lr", optimizer=OptimizerConfig(name="adagrad", learning_rate=cfg.learning_rate),
                                micro_batch_rows=None, seed=seed)
        self.dp, self.rn = build_model(self.layout, model_cfg), build_model(self.layout, model_cfg)
        salt = field_seed(seed, "es_dfm.elapsed")
        hashed = murmur3_32_int64(np.arange(cfg.elapsed_buckets, dtype=np.int64), salt)
        self._bucket_ids = (hashed.astype(np.int64) % layout.buckets).astype(np.int64)
        self.seen = np.zeros((2, 2), np.int64)  # [dp, rn] x [label 0, label 1]: rows learnt from

    @property
    def warm(self) -> bool:
        """Whether both models have learnt from ``warmup_labels`` rows of each label."""
        return bool((self.seen >= self.cfg.warmup_labels).all())

    def aux_ids(self, ids: np.ndarray, elapsed_ms: np.ndarray) -> np.ndarray:
        """The auxiliary models' id columns: ``ids`` with the hashed elapsed-time bucket before the bags."""
        col = self._bucket_ids[elapsed_bucket(elapsed_ms, self.cfg.elapsed_buckets)][:, None]
        ids = np.asarray(ids, np.int64)
        return np.concatenate([ids[:, :self.n_single], col, ids[:, self.n_single:]], axis=1)

    def predict(self, ids: np.ndarray, dense: np.ndarray,
                elapsed_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(p_dp, p_rn)`` per row, float64; no update. Before :attr:`warm`: ``(0, 1)``."""
        if not len(ids) or not self.warm:
            return np.zeros(len(ids)), np.ones(len(ids))
        aux = self.aux_ids(ids, elapsed_ms)
        dense = np.asarray(dense, np.float32)
        return (self.dp.predict(aux, dense).numpy().astype(np.float64),
                self.rn.predict(aux, dense).numpy().astype(np.float64))

    def train_dp(self, ids: np.ndarray, dense: np.ndarray, elapsed_ms: np.ndarray, delayed: np.ndarray) -> None:
        """Learn ``p_dp`` from settled impressions: ``delayed`` (1/0) = clicked after ``e``, within the window."""
        self._train(0, ids, dense, elapsed_ms, delayed)

    def train_rn(self, ids: np.ndarray, dense: np.ndarray, elapsed_ms: np.ndarray, real: np.ndarray) -> None:
        """Learn ``p_rn`` from settled observed negatives: ``real`` (1/0) = no click within the window."""
        self._train(1, ids, dense, elapsed_ms, real)

    def _train(self, head: int, ids: np.ndarray, dense: np.ndarray, elapsed_ms: np.ndarray,
               labels: np.ndarray) -> None:
        if len(ids):
            pos = int((np.asarray(labels) >= 0.5).sum())
            self.seen[head] += (len(ids) - pos, pos)
            model: ModelBase = (self.dp, self.rn)[head]
            model.predict_then_train(self.aux_ids(ids, elapsed_ms), np.asarray(dense, np.float32),
                                     np.asarray(labels, np.float32))
