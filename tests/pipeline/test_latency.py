"""``job.max_latency_ms`` sizes the Flink / PyFlink timers (make_env's Configuration) and the Kafka window."""

from __future__ import annotations

import pytest

from flinkdl.config.schema import JobConfig
from flinkdl.pipeline.latency import budget


def _conf(job: dict, flink: dict | None = None):
    from pyflink.common import Configuration

    from flinkdl.pipeline.job import make_env

    conf = Configuration()
    make_env(JobConfig.model_validate({"job": job, "flink": flink or {}}), conf)
    return conf


def test_the_sizing_rule() -> None:
    b = budget(50)
    assert (b.window_ms, b.bundle_size, b.bundle_time_ms, b.buffer_timeout_ms) == (10, 1, 5, 2)
    assert budget(5).buffer_timeout_ms == 1  # never 0 (0 would flush after every record)


def test_max_latency_sets_bundles_and_buffer_timeout() -> None:
    conf = _conf({"max_latency_ms": 50})
    assert conf.get_string("python.fn-execution.bundle.size", "") == "1"
    assert conf.get_string("python.fn-execution.bundle.time", "") == "5"
    assert conf.get_string("execution.buffer-timeout.interval", "") == "2ms"


def test_null_keeps_the_bulk_settings() -> None:
    conf = _conf({})
    assert conf.get_string("python.fn-execution.bundle.size", "") == "32"  # the default source is the generator
    assert conf.get_string("python.fn-execution.bundle.time", "") == "100"
    assert conf.get_string("execution.buffer-timeout.interval", "unset") == "unset"  # Flink's default


def test_flink_pass_through_still_wins() -> None:
    conf = _conf({"max_latency_ms": 50}, {"execution.buffer-timeout.interval": "7ms"})
    assert conf.get_string("execution.buffer-timeout.interval", "") == "7ms"


def test_max_latency_sizes_the_kafka_window(monkeypatch) -> None:
    from flinkdl.pipeline import streams
    from flinkdl.sources import kafka

    seen: dict[str, int] = {}

    class Stop(Exception):
        pass

    def fake(_env, k):
        seen["batch_ms"] = k.batch_ms
        raise Stop

    monkeypatch.setattr(kafka, "kafka_stream", fake)
    base = {"source": {"kind": "kafka", "kafka": {"bootstrap_servers": "h:1", "topic": "t", "group_id": "g",
                                               "format": "json"}}}
    for job, want in (({"max_latency_ms": 50}, 10), ({}, 200)):
        cfg = JobConfig.model_validate({**base, "job": job})
        with pytest.raises(Stop):
            streams.feature_stream(None, cfg)  # type: ignore[arg-type]
        assert seen.pop("batch_ms") == want
