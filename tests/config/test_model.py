"""flinkdl.config.model: the worker's device names, ``model.xla_step``'s values."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from flinkdl.config.loader import load_config
from flinkdl.config.model import ModelConfig, WorkerConfig


@pytest.mark.parametrize(("given", "stored"), [
    ("cpu", "CPU:0"), ("CPU", "CPU:0"), ("gpu", "GPU:0"), ("gpu:1", "GPU:1"), ("/GPU:0", "GPU:0"),
    ("/device:GPU:2", "GPU:2"), (" gpu:0 ", "GPU:0"),
])
def test_device_spellings_normalise_to_tensorflow_names(given: str, stored: str) -> None:
    assert WorkerConfig(device=given).device == stored


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "/job:worker/GPU:0", "", "gpu:-1"])
def test_unknown_device_names_the_key_and_value(bad: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"worker.device: {bad!r} is not a device")):
        WorkerConfig(device=bad)


@pytest.mark.parametrize(("given", "stored"), [
    (None, "auto"), ("auto", "auto"), (True, True), (False, False), ("true", True), ("false", False),
])
def test_xla_step_is_auto_true_or_false(given: object, stored: object) -> None:
    kw = {} if given is None else {"xla_step": given}
    assert ModelConfig(**kw).xla_step == stored


def test_xla_step_from_yaml_and_set(tmp_path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("model: {name: lr, xla_step: false}\n")
    assert load_config(path).model.xla_step is False
    assert load_config(path, ["model.xla_step=auto"]).model.xla_step == "auto"
    assert load_config(path, ["model.xla_step=true"]).model.xla_step is True


@pytest.mark.parametrize("bad", ["always", "gpu", 2])
def test_xla_step_other_values_name_the_key(bad: object) -> None:
    with pytest.raises(ValidationError, match="xla_step"):
        ModelConfig(xla_step=bad)
