"""The worker loop's hook contract, in the spirit of Monolith's saver listeners.

For each batch the loop calls every hook's :meth:`StepHook.before_step` in order, scores and
trains, then every :meth:`StepHook.after_step` in reverse order, and at the end of the stream
every :meth:`StepHook.close` in reverse order: hooks nest like context managers, the first one
wraps all the others (so a timing hook listed last times the training step alone).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flinkdl.exchange.schema import labelled

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass
class Batch:
    """One step's input as the feature dataset yields it."""

    event_id: tf.Tensor  #: int64 ``[B]``
    label: tf.Tensor  #: float32 ``[B]``
    ids: tf.Tensor  #: int64 ``[B, n_ids]``
    dense: tf.Tensor  #: float32 ``[B, n_dense]``
    weight: tf.Tensor | None = None  #: float32 ``[B]``: per-row loss weights (a weighted layout only)
    #: bool ``[B]``: the rows the step trains on, when a hook narrows them (None: :attr:`labelled`)
    train: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.label)

    @property
    def labelled(self) -> np.ndarray:
        """Bool per row: whether the event has a label (is trained on); the others are only scored."""
        return labelled(np.asarray(self.label))


@dataclass
class Predictions:
    """One step's output: what goes back to the operator."""

    scores: tf.Tensor  #: float32 ``[B]``, each made before the model learnt its event
    model_version: int  #: the model's version after the step
    ps_version: int | None = None  #: a PS version this step committed (set by a hook), else None
    trained: int | None = None  #: rows the step learnt from (the labelled ones; None: every row)


class StepHook(abc.ABC):
    """Work done around each training step of a worker (see the module docstring for the order)."""

    @abc.abstractmethod
    def before_step(self, batch: Batch) -> None:
        """Before the model scores and learns ``batch``."""

    @abc.abstractmethod
    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        """After the step, before ``predictions`` go back to the operator (a hook may mark them)."""

    @abc.abstractmethod
    def close(self) -> None:
        """At the end of the input stream (not after an error)."""
