"""flinkdl.config.model: the worker's device names."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from flinkdl.config.model import WorkerConfig


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
