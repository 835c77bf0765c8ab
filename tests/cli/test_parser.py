"""The ``flinkdl`` parser: every command group registers the same way; ``python -m flinkdl.cli`` works."""

import subprocess
import sys

import pytest

from flinkdl import cli

COMMANDS = {"run", "report", "serve", "cluster", "submit", "resume", "jobs", "stop", "produce", "broker", "ps",
            "publish"}


def test_every_group_registers_its_commands() -> None:
    sub = cli.parser()._subparsers._group_actions[0]  # the one sub-command action
    assert set(sub.choices) == COMMANDS
    assert all(callable(g.register) for g in cli.GROUPS)


@pytest.mark.parametrize("argv", [["submit", "jobs/click_stream.yaml", "-p", "2"],
                                  ["resume", "c.yaml", "--from", "/sp/1"],
                                  ["ps", "serve", "--port", "9"],
                                  ["ps", "import", "d", "--config", "c.yaml"],
                                  ["publish", "rollback", "3", "--dir", "d"],
                                  ["serve", "jobs/click_stream_kafka.yaml", "--set", "serving.parallelism=2"],
                                  ["broker", "status"],
                                  ["produce", "--bootstrap", "h:1", "--topic", "t", "--generator"]])
def test_arguments_reach_a_handler(argv: list[str]) -> None:
    args = cli.parser().parse_args(argv)
    assert callable(args.func)


def test_max_events_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "jobs/click_stream.yaml", "--max-events", "0"]) == 2
    assert "--max-events must be > 0" in capsys.readouterr().err


def test_python_m_flinkdl_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "flinkdl.cli", "broker", "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "usage: flinkdl broker" in proc.stdout
