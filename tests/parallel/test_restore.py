"""The exactly-once restore of synchronous steps (:mod:`flinkdl.parallel.restore`), without Flink."""

from __future__ import annotations

import random
import threading

import pytest

from flinkdl.parallel.rendezvous import Rendezvous
from flinkdl.parallel.restore import Target, agree, catch_up, pick, restore_key
from flinkdl.ps.errors import PsError

P = 4  # ps.push_every_batches: rank 0 commits after batches 3, 7, 11, ...


def version_of(batch: int) -> int:
    """The version rank 0 committed once batches < ``batch`` were trained (a fresh start's is 100)."""
    return 100 + batch // P


def state_at(last: int) -> tuple[dict, list[int]]:
    """A rank's anchor and tail once it trained batches 0..``last`` (-1: none, a fresh anchor at 0)."""
    batch = (last + 1) // P * P
    return {"ps_version": version_of(batch), "batch": batch}, list(range(batch, last + 1))


def test_pick_is_the_earliest_anchor() -> None:
    assert pick([{"ps_version": 7, "batch": 8}, {"ps_version": 6, "batch": 4}]) == Target(4, 6)
    assert pick([{"batch": 3}, {"batch": 3}]) == Target(3, None)  # a fresh start at the stream's batch 3
    assert pick([{"ps_version": 5, "batch": 0}, {"batch": 0}]) == Target(0, 5)  # rank 1 had not started


@pytest.mark.parametrize("anchors", [
    [{"ps_version": 7, "batch": 8}, {"ps_version": 6, "batch": 8}],  # two versions for one batch
    [{"ps_version": 7, "batch": 8}, {"batch": 0}],  # a fresh rank behind a trained one
])
def test_pick_refuses_inconsistent_anchors(anchors: list[dict]) -> None:
    with pytest.raises(PsError):
        pick(anchors)


def test_catch_up_covers_the_batches_between_the_target_and_the_own_anchor() -> None:
    assert list(catch_up({"ps_version": 7, "batch": 8}, Target(4, 6))) == [4, 5, 6, 7]
    assert list(catch_up({"batch": 4}, Target(4, 6))) == []


@pytest.mark.parametrize("seed", range(20))
def test_every_rank_retrains_the_same_batches_from_one_version(seed: int) -> None:
    """Ranks in lock step (their last trained batches differ by at most one) take the barrier anywhere:
    after the restore each rank re-trains exactly the batches from the common target to its last one, in
    order, on the version that holds every batch before the target; it emits nothing twice (what it
    re-trains, it had emitted) and nothing is skipped (it continues after its last batch)."""
    rng = random.Random(seed)
    world = rng.choice([2, 3, 4])
    lead = rng.randrange(-1, 40)
    lasts = [max(lead - rng.randrange(2), -1) for _ in range(world)]
    states = [state_at(last) for last in lasts]
    target = pick([anchor for anchor, _ in states])
    assert target.batch <= min(last + 1 for last in lasts)
    assert target.version == version_of(target.batch)
    for (anchor, tail), last in zip(states, lasts, strict=True):
        replay = [*catch_up(anchor, target), *tail]
        assert replay == list(range(target.batch, last + 1))


class FakePs:
    """The calls :func:`agree` makes (a shared rendezvous; rank 0's rollback and commit recorded)."""

    def __init__(self, rv: Rendezvous, log: list) -> None:
        self.rv, self.log = rv, log

    def allreduce(self, key: str, round_no: int, rank: int, world: int, blob: bytes, timeout_s: float) -> list[bytes]:
        return self.rv.gather(key, round_no, rank, world, blob, timeout_s)

    def fence(self, writer: str) -> int:
        self.log.append(("fence", writer))
        return 1

    def rollback(self, version: int) -> dict:
        self.log.append(("rollback", version))
        return {}

    def commit(self) -> dict:
        self.log.append(("commit",))
        return {"version": 42}

    def end_lanes(self) -> None:
        self.log.append(("end_lanes",))


def _agree_all(own: list[dict], key: str = "k") -> tuple[list[dict], list]:
    rv, log = Rendezvous(), []
    out: list[dict | None] = [None] * len(own)

    def rank(k: int) -> None:
        out[k] = agree(FakePs(rv, log), key, k, len(own), own[k], "worker-0", 10.0)

    threads = [threading.Thread(target=rank, args=(k,)) for k in range(len(own))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rv.pending() == 0
    return [o for o in out if o is not None], log


def test_agree_rolls_the_ps_back_to_the_earliest_anchor_for_every_rank() -> None:
    out, log = _agree_all([{"ps_version": 7, "batch": 8}, {"ps_version": 6, "batch": 4}])
    assert out == [{"ps_version": 6, "batch": 4}] * 2
    assert log == [("fence", "worker-0"), ("rollback", 6)]


def test_agree_on_a_fresh_start_commits_once() -> None:
    out, log = _agree_all([{"batch": 0}, {"batch": 0}, {"batch": 0}])
    assert out == [{"ps_version": 42, "batch": 0}] * 3
    assert log == [("fence", "worker-0"), ("commit",), ("end_lanes",)]


def test_restore_keys_differ_by_attempt_and_reset() -> None:
    keys = {restore_key("t_", "/run", a, r) for a in range(3) for r in range(3)}
    assert len(keys) == 9
