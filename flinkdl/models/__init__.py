"""Models: ``build_model(layout, cfg)`` → a :class:`ModelBase` (lr, fm, deepfm or ``pkg.mod:Class``)."""

from flinkdl.models.base import ModelBase
from flinkdl.models.optim import make_optimizer
from flinkdl.models.registry import build_model, known_models, register, resolve

__all__ = ["ModelBase", "build_model", "known_models", "make_optimizer", "register", "resolve"]
