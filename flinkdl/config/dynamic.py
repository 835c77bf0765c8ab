"""Config of ``model.name: dynamic``: collisionless ids in a bounded table (prototype, flinkdl/models/dynamic.py)."""

from __future__ import annotations

from pydantic import Field

from flinkdl.config.base import Strict


class DynamicConfig(Strict):
    """Ids get rows of their own in a table of ``capacity`` rows (admitted by count, evicted LRU / TTL)."""

    base: str = Field("deepfm", description="the model on the mapped rows")
    capacity: int = Field(1 << 20, ge=1, description="rows for admitted ids (plus one fallback row per field)")
    admit_after: int = Field(1, ge=1, description="an id gets its own row at its k-th occurrence")
    count_window_steps: int = Field(1000, ge=0, description="occurrence counts are cleared every this many "
                                    "steps (bounded counting); 0 = never")
    count_max_ids: int | None = Field(None, ge=1, description="counts are also cleared when they hold this "
                                      "many ids (bounded memory whatever the batch size); null: 4 × capacity")
    ttl_steps: int | None = Field(None, ge=1, description="free a row unused for this many steps; null: only LRU")
