"""The base of every config section, and the check for a section a job's source kind requires."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def section(value: T | None, name: str) -> T:
    """A config section the job's source kind makes required (the config validates that); ``name`` is its
    dotted key, named in the error if it is missing all the same."""
    if value is None:
        raise ValueError(f"{name} is not set")
    return value
