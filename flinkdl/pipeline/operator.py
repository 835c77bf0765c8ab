"""What every Python operator of the job does first when it opens."""

from __future__ import annotations

from typing import TypeVar

from flinkdl.config.schema import JobConfig

T = TypeVar("T")
from flinkdl.pipeline.taskmanager_watch import exit_with_taskmanager


def open_operator(cfg_json: str) -> JobConfig:
    """Watch this harness's TaskManager (:mod:`~flinkdl.pipeline.taskmanager_watch`) and parse the
    job config, which travels to the operators as JSON; the operator hands sections on."""
    exit_with_taskmanager()
    return JobConfig.model_validate_json(cfg_json)


def section(value: T | None, name: str) -> T:
    """A config section the job's source kind makes required (the config validates that)."""
    if value is None:
        raise ValueError(f"{name} is not set")
    return value
