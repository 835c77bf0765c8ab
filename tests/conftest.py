"""Shared test helpers: where the shared data sets live, skipping cleanly without them."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A real Kafka-protocol broker (tansu, in-memory) on a free loopback port, stopped by PID."""
    from flinkdl.devtools import broker

    with broker.running(tmp_path_factory.mktemp("broker") / "tansu.log") as b:
        yield b
