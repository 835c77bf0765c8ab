"""``flinkdl run/submit -D key=value``: parsed, and for submit on the ``flink run`` command line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from flinkdl import cli
from flinkdl.cluster.standalone import LocalCluster


def test_run_and_submit_take_repeated_d() -> None:
    for cmd in ("run", "submit"):
        args = cli.parser().parse_args([cmd, "c.yaml", "-D", "a.b=1", "-Dc=2"])
        assert args.flink == ["a.b=1", "c=2"]


def test_submit_puts_d_on_the_flink_run_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 0, "Job has been submitted with JobID " + "ab" * 16, "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    job = LocalCluster(tmp_path).submit("jobs/click_stream.yaml", flink=["taskmanager.memory.process.size=4g"])
    assert job == "ab" * 16
    cmd = seen["cmd"]
    assert "-Dtaskmanager.memory.process.size=4g" in cmd[: cmd.index("-pym")]  # flink run's own option
    tail = cmd[cmd.index("-pym"):]
    assert tail[tail.index("-D") + 1] == "taskmanager.memory.process.size=4g"  # and the job's (over flink:)


def test_job_entry_merges_d(monkeypatch: pytest.MonkeyPatch) -> None:
    import flinkdl.pipeline.__main__ as entry

    got: dict[str, Any] = {}
    monkeypatch.setattr(entry, "make_env", lambda cfg: got.setdefault("flink", cfg.flink))
    monkeypatch.setattr(entry, "build", lambda *a: None)
    with pytest.raises(AttributeError):  # the fake env has no execute: the config was built by then
        entry.main(["--config", "jobs/click_stream.yaml", "-D", "a.b=1"])
    assert got["flink"] == {"a.b": "1"}
