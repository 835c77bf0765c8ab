"""Model registry: ``cfg.name`` → :class:`ModelBase` subclass.

A name is either registered with :func:`register` (built-ins: ``lr``, ``fm``, ``deepfm``, ``ensemble``) or
an import path ``"package.module:Class"`` naming a :class:`ModelBase` subclass, so a custom
model is one file.

>>> sorted(known_models())
['deepfm', 'dynamic', 'ensemble', 'fm', 'lr']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from flinkdl.config.schema import ModelConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.base import ModelBase

M = TypeVar("M", bound=type[ModelBase])

_REGISTRY: dict[str, type[ModelBase]] = {}
_BUILTINS = ("flinkdl.models.lr", "flinkdl.models.fm", "flinkdl.models.deepfm", "flinkdl.models.ensemble",
             "flinkdl.models.dynamic")


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make ``cls`` buildable as ``name`` (also sets ``cls.name``)."""

    def deco(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, ModelBase)):
            raise TypeError(f"@register({name!r}): {cls!r} is not a ModelBase subclass")
        other = _REGISTRY.get(name)
        if other is not None and other is not cls:
            raise ValueError(
                f"model name {name!r} already registered by {other.__module__}.{other.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def known_models() -> list[str]:
    """Registered names (built-ins included)."""
    for mod in _BUILTINS:
        importlib.import_module(mod)
    return sorted(_REGISTRY)


def resolve(name: str) -> type[ModelBase]:
    """The class for a registered name or a ``"package.module:Class"`` path; ValueError otherwise."""
    known = known_models()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" not in name:
        raise ValueError(f"model.name: unknown model {name!r}; known: {known} or 'package.module:Class'")
    mod_name, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model.name: cannot import {name!r}: {e}") from e
    if not (isinstance(obj, type) and issubclass(obj, ModelBase)):
        raise ValueError(f"model.name: {name!r} is {obj!r}, not a ModelBase subclass")
    return obj


def build_model(layout: FeatureLayout, cfg: ModelConfig) -> ModelBase:
    """Instantiate ``cfg.name`` for ``layout``."""
    model = resolve(cfg.name)(layout, cfg)
    if cfg.xla_step is True and model._fast_step is None:  # auto: the generic step
        raise ValueError(f"model.xla_step: only lr has an XLA step, not {cfg.name!r}")
    return model
