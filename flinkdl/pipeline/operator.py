"""What every Python operator of the job does first when it opens."""

from __future__ import annotations

from flinkdl.config.base import section
from flinkdl.config.schema import JobConfig
from flinkdl.pipeline.taskmanager_watch import exit_with_taskmanager

__all__ = ["open_operator", "section"]  # section: re-exported for the operators


def open_operator(cfg_json: str) -> JobConfig:
    """Watch this harness's TaskManager (:mod:`~flinkdl.pipeline.taskmanager_watch`) and parse the
    job config, which travels to the operators as JSON; the operator hands sections on."""
    exit_with_taskmanager()
    return JobConfig.model_validate_json(cfg_json)

