"""The job's environment: which jobs start the mini-cluster JVM light, and that only its start sees JVM_ARGS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyflink.common import Configuration

from flinkdl.config.loader import load_config
from flinkdl.pipeline.job import LIGHT_JVM_ARGS, light_jvm


@pytest.mark.parametrize(("job", "sets", "light"), [
    ("click_stream", [], True),  # the generator at parallelism 1: only batch indexes cross the JVM
    ("click_stream", ["job.parallelism=2"], False),  # the prediction envelopes cross it to the evaluators
    ("click_stream_kafka", ["source.kafka.reader=python"], True),  # read + train in one operator: ticks only
    ("click_stream_kafka", ["source.kafka.reader=flink"], False),  # every message is a JVM row
])
def test_light_jvm_only_where_no_event_crosses_it(tmp_path: Path, job: str, sets: list[str], light: bool) -> None:
    assert light_jvm(load_config(f"jobs/{job}.yaml", [f"job.run_dir={tmp_path}", *sets])) is light


def test_the_serving_job_does_not_ask_for_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flinkdl.pipeline import job

    asked: list[str | None] = []
    monkeypatch.setattr(job, "_first_configuration", lambda args: asked.append(args) or Configuration())
    cfg = load_config("jobs/click_stream_kafka.yaml", [f"job.run_dir={tmp_path}", "source.kafka.reader=python"])
    job.make_env(cfg, training=False)
    job.make_env(cfg)
    assert asked == [None, LIGHT_JVM_ARGS]


_CHILD = """
import json, os, sys, psutil
from flinkdl.pipeline.job import _first_configuration
_first_configuration(sys.argv[1] or None)
java = [p.cmdline() for p in psutil.Process().children(recursive=True) if "java" in p.name()]
print(json.dumps({"java": java[0] if java else None, "env": os.environ.get("JVM_ARGS")}))
"""


@pytest.mark.parametrize(("user", "ours", "want"), [(None, LIGHT_JVM_ARGS, LIGHT_JVM_ARGS),
                                                    ("-Xmx1g", LIGHT_JVM_ARGS, "-Xmx1g"), (None, "", None)])
def test_the_gateway_starts_with_the_args_and_the_environment_keeps_none(user, ours, want) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JVM_ARGS"} | ({"JVM_ARGS": user} if user else {})
    out = subprocess.run([sys.executable, "-c", _CHILD, ours], env=env, capture_output=True, text=True, timeout=120)
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["java"] is not None, out.stderr[-2000:]
    for arg in LIGHT_JVM_ARGS.split():
        assert (arg in got["java"]) is (want == LIGHT_JVM_ARGS)
    if want == "-Xmx1g":
        assert "-Xmx1g" in got["java"]
    assert got["env"] == user  # the user's JVM_ARGS stays; ours is gone after the start
