"""The ``flink:`` section and ``-D key=value`` reach Flink's Configuration unchanged (-D wins)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flinkdl.config.flink import dynamic_property, merged
from flinkdl.config.schema import JobConfig


def test_d_wins_over_the_section_and_values_are_flink_strings() -> None:
    out = merged({"a.b": 2, "c.d": True, "e": "x=y"}, ["a.b=4", "f=g=h"])
    assert out == {"a.b": "4", "c.d": "true", "e": "x=y", "f": "g=h"}


@pytest.mark.parametrize("bad", ["novalue", "=v", ""])
def test_d_needs_key_equals_value(bad: str) -> None:
    with pytest.raises(ValueError, match="key=value"):
        dynamic_property(bad)


def test_the_section_takes_scalars_only() -> None:
    assert JobConfig.model_validate({"flink": {"pipeline.object-reuse": True}}).flink == {"pipeline.object-reuse": True}
    with pytest.raises(ValidationError):
        JobConfig.model_validate({"flink": {"k": [1]}})


def test_keys_reach_make_envs_configuration() -> None:
    from pyflink.common import Configuration

    from flinkdl.pipeline.job import make_env

    cfg = JobConfig.model_validate({"flink": {"pipeline.max-parallelism": 64,
                                              "restart-strategy.type": "exponential-delay"}})
    cfg.flink = merged(cfg.flink, ["execution.buffer-timeout.interval=7ms", "pipeline.max-parallelism=96"])
    conf = Configuration()
    make_env(cfg, conf)
    assert conf.get_string("execution.buffer-timeout.interval", "") == "7ms"
    assert conf.get_string("pipeline.max-parallelism", "") == "96"
    assert conf.get_string("restart-strategy.type", "") == "exponential-delay"  # over flinkdl's own "none"
