"""Code that runs around each step of the worker loop: the :class:`StepHook` contract and its hooks."""

from flinkdl.worker.hooks.base import Batch, Predictions, StepHook

__all__ = ["Batch", "Predictions", "StepHook"]
