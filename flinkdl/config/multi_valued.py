"""Config of a multi-valued ID field (``features.categorical[*].multi``): a bag of ids, pooled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flinkdl.config.base import Strict


class MultiValued(Strict):
    """A categorical field whose value is a list of ids: a string split on ``sep`` (``"Action|Comedy"``)
    or a JSON/Arrow list. Each id is hashed as a single-valued field's value would be; the model pools
    the embeddings of the first ``max_len`` ids (``sum`` or ``mean``) into the field's one vector. An
    empty or missing list is the field's missing id; an empty item (``"a||b"``) or a nested list is a
    dead letter (``bad_list``, naming the field)."""

    sep: str = Field("|", min_length=1, description="separator of the ids in a string value")
    pooling: Literal["sum", "mean"] = "mean"
    max_len: int = Field(16, ge=1, le=1024, description="ids kept per event (the first ones); the rest are dropped")
