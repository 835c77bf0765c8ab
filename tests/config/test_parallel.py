"""``parallel:``: synchronous steps are opt-in and refused where they cannot be kept in step."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flinkdl.config.schema import JobConfig

KAFKA = {"bootstrap_servers": "127.0.0.1:9092", "topic": "t", "format": "json"}
SYNC = {"job": {"parallelism": 2}, "parallel": {"sync_steps": True}, "ps": {"enabled": True}}


def test_off_by_default_and_valid_on_the_generator() -> None:
    assert JobConfig().parallel.sync_steps is False
    assert JobConfig.model_validate(SYNC).parallel.timeout_s == 120


@pytest.mark.parametrize(("change", "message"), [
    ({"ps": {"enabled": False}}, "parallel.sync_steps needs ps.enabled"),
    ({"source": {"kind": "directory", "directory": {"path": "/tmp/x", "columns": ["a"]}}},
     "needs source.kind: generator"),
    ({"source": {"kind": "kafka", "kafka": {**KAFKA, "reader": "flink"}}}, "needs source.kafka.reader: python"),
    ({"model": {"name": "lr", "fresh_scores": True}}, "without model.fresh_scores"),
    ({"job": {"parallelism": 3}, "model": {"micro_batch_rows": 512}}, "512 must be a multiple of job.parallelism"),
])
def test_refused_with_the_key(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        JobConfig.model_validate({**SYNC, **change})


def test_accepted_with_exactly_once() -> None:
    JobConfig.model_validate({**SYNC, "job": {"parallelism": 2, "exactly_once": True, "checkpoint_interval_s": 5}})


def test_no_effect_at_parallelism_one() -> None:
    JobConfig.model_validate({**SYNC, "job": {"parallelism": 1}, "ps": {"enabled": False}})


def test_accepted_on_the_python_kafka_reader() -> None:
    cfg = JobConfig.model_validate({**SYNC, "source": {"kind": "kafka", "kafka": {**KAFKA, "reader": "python"}}})
    assert cfg.parallel.sync_take_messages == 1024


def test_refused_with_a_feedback_join() -> None:
    with pytest.raises(ValidationError, match="does not support a feedback: section"):
        JobConfig.model_validate({**SYNC, "source": {"kind": "kafka", "kafka": {**KAFKA, "reader": "python"}},
                                  "features": {"event_id": "event_id", "timestamp": "ts", "categorical": ["C1"]},
                                  "feedback": {"topic": "fb"}})
