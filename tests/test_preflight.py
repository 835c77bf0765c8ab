"""Checks before Flink starts: one line naming the key, the value and what was tried; exit status 2, fast."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from flinkdl import cli, preflight
from flinkdl.config.schema import JobConfig, PsConfig
from flinkdl.preflight import PreflightError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def silent_listener():
    """A TCP port that accepts connections and never answers (not Kafka, not a PS)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def _main_fails(argv: list[str], capsys: pytest.CaptureFixture[str], *fragments: str) -> float:
    t0 = time.monotonic()
    assert cli.main(argv) == 2
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err, err
    assert elapsed < 30
    return elapsed


def test_unreachable_kafka_names_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    _main_fails(["run", "jobs/click_stream_kafka.yaml", "--set", f"source.kafka.bootstrap_servers=127.0.0.1:{port}"],
                capsys, "source.kafka.bootstrap_servers", f"127.0.0.1:{port}", "TCP connect")


def test_a_listener_that_is_not_kafka_fails_the_metadata_request(silent_listener: int) -> None:
    with pytest.raises(PreflightError, match="metadata request") as e:
        preflight.check_kafka("sinks.kafka.bootstrap_servers", f"127.0.0.1:{silent_listener}")
    assert e.value.key == "sinks.kafka.bootstrap_servers"


def test_unreachable_ps_without_start_local(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    _main_fails(["run", "jobs/click_stream.yaml", "--set", "ps.enabled=true", "--set", "ps.start_local=false",
                 "--set", f"ps.address=grpc://127.0.0.1:{port}"], capsys, "ps.address", "flinkdl ps serve")


def test_a_loopback_ps_that_run_may_start_is_not_an_error() -> None:
    preflight.check_ps(PsConfig(enabled=True, address=f"grpc://127.0.0.1:{_closed_port()}"))


def test_missing_watched_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    _main_fails(["run", "jobs/criteo.yaml", "--set", f"source.directory.path={missing}"], capsys,
                "source.directory.path", str(missing), "no such directory")


def test_missing_side_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    missing = tmp_path / "users.tsv"
    _main_fails(["run", "jobs/movielens.yaml", "--set", f"source.directory.path={tmp_path / 'in'}", "--set",
                 f"enrich=[{{path: {missing}, key: 'user_id:token', columns: [age]}}]"], capsys,
                "enrich[0].path", str(missing), "No such file")


def test_unwritable_checkpoint_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _main_fails(["run", "jobs/click_stream.yaml", "--set", f"job.checkpoint_dir={blocker}/cp"], capsys,
                "job.checkpoint_dir", "not writable")


@pytest.mark.parametrize("argv", [["jobs"], ["stop", "0" * 32, "--savepoint", "/tmp/sp"],
                                  ["submit", "jobs/click_stream.yaml"]])
def test_unreachable_flink_cluster(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    _main_fails([*argv, "--rest", url], capsys, "--rest", url, "no Flink cluster answers")


def test_check_run_passes_a_plain_generator_job(tmp_path: Path) -> None:
    cfg = JobConfig.model_validate({"job": {"checkpoint_dir": str(tmp_path / "cp")}})
    preflight.check_run(cfg)
    assert (tmp_path / "cp").is_dir()


def test_serve_without_a_ps_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()  # loopback: `flinkdl run` would start one there, `flinkdl serve` never does
    _main_fails(["serve", "jobs/click_stream_kafka.yaml", "--set", f"ps.address=grpc://127.0.0.1:{port}"],
                capsys, "ps.address", f"127.0.0.1:{port}", "no parameter server answers")


def test_serve_on_a_cluster_without_a_ps_fails_in_one_line_before_submitting(
        capsys: pytest.CaptureFixture[str]) -> None:
    port, rest = _closed_port(), f"http://127.0.0.1:{_closed_port()}"
    _main_fails(["serve", "jobs/click_stream_kafka.yaml", "--rest", rest,
                 "--set", f"ps.address=grpc://127.0.0.1:{port}"],
                capsys, "ps.address", f"127.0.0.1:{port}", "no parameter server answers")


def test_serve_needs_a_committed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.ps.conftest import PsProcess

    server = PsProcess(None)  # in memory: nothing committed
    try:
        _main_fails(["serve", "jobs/click_stream_kafka.yaml", "--set", f"ps.address={server.address}"],
                    capsys, "ps.address", "no committed version")
    finally:
        server.stop()


def test_serve_reads_a_kafka_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "jobs/click_stream.yaml"]) == 2
    assert "source.kind must be 'kafka'" in capsys.readouterr().err
