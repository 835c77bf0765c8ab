"""ES-DFM in the worker: the weight column → importance weights, and the elapsed-time model trained online.

Under ``feedback.strategy: es_dfm`` the feature batch's ``weight`` column carries each row's
elapsed time and the *real negative* mark (:mod:`flinkdl.feedback.esdfm_rows`). Before the step
the hook turns it into ES-DFM's loss weights (:func:`~flinkdl.feedback.esdfm.esdfm_weights`, with
``p_dp``/``p_rn`` of the :class:`~flinkdl.feedback.esdfm.ElapsedTimeModel` before this batch) and
takes the real negatives out of the main model's step (``Batch.train``); they keep their label 0,
so they are not served either. After the step the elapsed-time model learns what settled in the
batch: a positive (with the job's ``e`` = 0 every positive is a delayed one, the duplicate of a
fake negative): ``p_dp`` 1, ``p_rn`` 0; a real negative: ``p_dp`` 0, ``p_rn`` 1. As in
``bench/feedback_sim.py``: the weights of a batch come from the model before it learnt the batch.
With the parameter server the elapsed-time model is in every version the main model commits
(:mod:`flinkdl.worker.hooks.esdfm_ps`), so an exactly-once restore brings it back with the main model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flinkdl.config.esdfm import EsDfmConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.feedback.esdfm import ElapsedTimeModel, esdfm_weights
from flinkdl.feedback.esdfm_rows import split_weight_column
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook
from flinkdl.worker.hooks.esdfm_ps import ElapsedTimeOnPs
from flinkdl.worker.ps_sync import PsSync


class EsDfmHook(StepHook):
    """Owns the :class:`ElapsedTimeModel` (over ``layout``, the unweighted feature layout) of one worker.

    ``ps``: the main model's sync; the elapsed-time model is loaded from the server and pushed before
    each of its commits. The hook must come after the PS hook (its ``after_step`` runs before the commit)."""

    def __init__(self, layout: FeatureLayout, cfg: EsDfmConfig, seed: int = 0, ps: PsSync | None = None) -> None:
        self.aux = ElapsedTimeModel(layout, cfg, seed)
        self.ps = ElapsedTimeOnPs(self.aux, ps) if ps is not None else None
        self._settled: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def after(cls, hooks: Sequence[StepHook], layout: FeatureLayout, cfg: EsDfmConfig, seed: int = 0) -> EsDfmHook:
        """The hook for a worker whose earlier ``hooks`` may hold a PS hook (whose sync it then joins)."""
        from flinkdl.worker.hooks.ps import PsHook

        return cls(layout, cfg, seed, next((h.sync for h in hooks if isinstance(h, PsHook)), None))

    def before_step(self, batch: Batch) -> None:
        import tensorflow as tf

        if batch.weight is None:
            raise ValueError("feedback.strategy: es_dfm needs the weighted feature layout (a weight column)")
        elapsed, real = split_weight_column(np.asarray(batch.weight))
        labels = np.asarray(batch.label)
        train = batch.labelled & ~real
        ids, dense = np.asarray(batch.ids), np.asarray(batch.dense)
        weights = np.ones(batch.rows, np.float32)
        if train.any():
            p_dp, p_rn = self.aux.predict(ids[train], dense[train], elapsed[train])
            weights[train] = esdfm_weights(labels[train], p_dp, p_rn)
        batch.weight, batch.train = tf.constant(weights), train
        settled = (train & (labels >= 0.5)) | real  # positives (delayed ones) and real negatives
        self._settled = (ids[settled], dense[settled], elapsed[settled], real[settled])

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        if self._settled is None:
            return
        ids, dense, elapsed, real = self._settled
        self._settled = None
        delayed = (~real).astype(np.float32)  # a positive here came after e: p_dp's 1, p_rn's 0
        if self.ps is not None and len(ids):
            self.ps.touch(self.aux.aux_ids(ids, elapsed))
        self.aux.train_dp(ids, dense, elapsed, delayed)
        self.aux.train_rn(ids, dense, elapsed, real.astype(np.float32))

    def close(self) -> None:
        if self.ps is not None:
            self.ps.close()
