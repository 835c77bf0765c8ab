"""``serving:``: the scoring-only job of ``flinkdl serve`` (a request topic, a model from the PS)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flinkdl.config.base import Strict


class ServingConfig(Strict):
    """How ``flinkdl serve`` reads its request topic (``source.kafka``) and refreshes its model.

    The topic, format and columns are ``source.kafka``'s; the consumer group, starting offsets and
    parallelism are the serving job's own, so training and serving scale apart.
    """

    source: Literal["ps", "published"] = Field(
        "ps", description="ps: the PS's latest committed version; published: the highest version in publish.dir "
        "(only what passed the quality gate; docs/PUBLISH.md)")
    parallelism: int | None = Field(None, ge=1, le=256, description="null: job.parallelism")
    refresh_s: float = Field(1.0, gt=0, description="poll the PS for a newer committed version this often")
    group_id: str | None = Field(None, min_length=1, description="null: <source.kafka.group_id>-serving")
    starting_offsets: Literal["committed", "earliest", "latest"] = Field(
        "latest", description="where a serving job without a checkpoint starts on the request topic")
