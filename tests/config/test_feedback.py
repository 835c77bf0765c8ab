"""The feedback: section: defaults, and errors that name the key and the value."""

import pytest
from pydantic import ValidationError

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.config.schema import JobConfig

KAFKA = {"kind": "kafka", "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic": "imp", "format": "json"}}
FEATURES = {"event_id": "event_id", "timestamp": "ts", "categorical": ["C1"]}


def test_a_feedback_job_validates():
    cfg = JobConfig.model_validate({"source": KAFKA, "features": FEATURES,
                                    "feedback": {"topic": "fb", "strategy": "wait_window", "window_s": 600}})
    assert cfg.feedback is not None and cfg.feedback.window_ms == 600_000


@pytest.mark.parametrize(("change", "words"), [
    ({"source": {"kind": "generator"}}, "source.kind: kafka"),
    ({"source": {**KAFKA, "kafka": {**KAFKA["kafka"], "format": "csv", "columns": ["a"]}}}, "format: json, got 'csv'"),
    ({"features": {**FEATURES, "timestamp": None}}, "feedback.ts_field 'ts' must be features.timestamp"),
])
def test_a_job_that_does_not_fit_is_refused_with_the_key(change, words):
    with pytest.raises(ValidationError, match=words):
        JobConfig.model_validate({"source": KAFKA, "features": FEATURES, "feedback": {"topic": "fb"}, **change})


@pytest.mark.parametrize(("key", "value"), [("strategy", "es_dfm_x"), ("window_s", 0), ("idle_timeout_s", -1)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ValidationError, match=key):
        FeedbackConfig.model_validate({"topic": "fb", key: value})


def test_the_three_fields_must_differ():
    with pytest.raises(ValidationError, match=r"id_field .* must be three different"):
        FeedbackConfig(topic="fb", label_field="event_id")


def test_positive_actions():
    f = FeedbackConfig(topic="fb")
    assert [f.is_positive(v) for v in (1, 0, True, "click", "view", None, "")] == [True, False, True, True, False,
                                                                                      None, None]


def test_es_dfm_is_a_strategy_the_job_takes_at_elapsed_0_and_exactly_once_at_parallelism_1():
    f = FeedbackConfig.model_validate({"topic": "fb", "strategy": "es_dfm", "es_dfm": {"elapsed_buckets": 8}})
    assert f.strategy == "es_dfm" and f.es_dfm.elapsed_buckets == 8 and f.es_dfm.elapsed_s == 0
    job = {"source": KAFKA, "features": FEATURES, "feedback": {"topic": "fb", "strategy": "es_dfm"}}
    assert JobConfig.model_validate(job).feedback.strategy == "es_dfm"
    with pytest.raises(ValidationError, match=r"feedback\.es_dfm\.elapsed_s: the Flink job takes only 0"):
        JobConfig.model_validate({**job, "feedback": {**job["feedback"], "es_dfm": {"elapsed_s": 5}}})
    eo = {"exactly_once": True, "checkpoint_interval_s": 5}
    assert JobConfig.model_validate({**job, "job": eo, "ps": {"enabled": True}}).job.exactly_once
    with pytest.raises(ValidationError, match=r"es_dfm with job\.exactly_once needs job\.parallelism 1, got 2"):
        JobConfig.model_validate({**job, "job": {**eo, "parallelism": 2}, "ps": {"enabled": True}})
    with pytest.raises(ValidationError, match="elapsed_buckets"):
        FeedbackConfig.model_validate({"topic": "fb", "es_dfm": {"elapsed_buckets": 0}})
