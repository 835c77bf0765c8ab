"""Exactly-once (parallelism 1) on a sharded parameter server of two processes: kill -9 one shard
mid-stream, start it again a second later; the run ends where an uncrashed run on the same
sharded PS ends (tests/faults.py: every event once, AUC within 0.002, PS rows within 1e-4).

Shard 1 is a plain shard; shard 0 also coordinates the two-phase commits and holds the dense
variables. Either death fails the worker's next push or commit (a restarted shard refuses the
writes of a client that saw its earlier incarnation), the trainer rolls every shard back to its
anchor and replays its tail (docs/EXACTLY_ONCE.md, docs/PS.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.faults import Job, assert_mid_stream, compare, outcome, overrides, wait_predictions
from tests.ps.conftest import ShardedPs

pytestmark = pytest.mark.e2e


def _run(base: Path, name: str, kill_shard: int | None) -> dict:
    run_dir, ps = base / name, ShardedPs(2, base / f"{name}-ps-versions")
    sets = [a for o in overrides(run_dir, ps.address) for a in ("--set", o)]
    job = Job(["run", "jobs/click_stream.yaml", *sets, "--summary", str(run_dir / "summary.json")],
              base / f"{name}.log")
    injected: dict = {}
    try:
        if kill_shard is not None:
            wait_predictions(run_dir, job=job)
            assert_mid_stream(run_dir)
            shard = ps.shards[kill_shard]
            injected["killed"] = shard.proc.pid
            shard.kill9()
            time.sleep(1.0)
            shard.start()
        job.wait(400)
        out = outcome(run_dir, ps.address, json.loads((run_dir / "summary.json").read_text()))
        with_versions = {"versions": len(list((base / f"{name}-ps-versions" / "commits").glob("v*.json")))}
    finally:
        job.kill()
        ps.stop()
    return {**out, "injected": injected, **with_versions}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sharded-faults")


@pytest.fixture(scope="module")
def clean(base) -> dict:
    return _run(base, "clean", None)


@pytest.mark.parametrize("shard", [1, 0], ids=["shard1", "shard0-coordinator"])
def test_kill_9_of_one_ps_shard_recovers_exactly_once(base, clean, shard):
    assert clean["versions"] > 0
    run = _run(base, f"kill-shard{shard}", shard)
    compare(run, clean, f"ps shard {shard} {run['injected']}")
