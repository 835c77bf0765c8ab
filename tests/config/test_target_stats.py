"""``model.target_stats``: off by default, its defaults, and the bounds it checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flinkdl.config.schema import ModelConfig
from flinkdl.config.target_stats import TargetStatsConfig


def test_off_by_default_and_an_empty_section_takes_the_defaults() -> None:
    assert ModelConfig().target_stats is None
    on = ModelConfig.model_validate({"target_stats": {}}).target_stats
    assert on == TargetStatsConfig(prior=10.0, counts=True)


@pytest.mark.parametrize("bad", [{"prior": 0}, {"prior": -1.0}, {"count_scale": 5}])
def test_rejects(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ModelConfig.model_validate({"target_stats": bad})
