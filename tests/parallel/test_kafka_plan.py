"""Synchronous steps on Kafka: the take plan (which offsets take ``g`` is) and the reader of takes, no broker."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from flinkdl.config.schema import JobConfig
from flinkdl.parallel.kafka_batches import KafkaBatches, per_take
from flinkdl.parallel.kafka_plan import Take, TakePlan

KAFKA = {"bootstrap_servers": "127.0.0.1:9092", "topic": "t", "format": "json"}


def test_takes_cover_every_partition_in_order_without_gaps_or_overlap() -> None:
    plan = TakePlan([0, 1, 2], {0: 5, 1: 0, 2: 100}, per_take=4)
    takes = [plan.take(g) for g in range(12)]
    assert takes[:4] == [Take(0, 5, 9), Take(1, 0, 4), Take(2, 100, 104), Take(0, 9, 13)]
    for part in (0, 1, 2):
        mine = [t for t in takes if t.partition == part]
        assert all(a.stop == b.start for a, b in itertools.pairwise(mine))
        assert len(mine) == 4
    for g, t in enumerate(takes):
        assert all(plan.index(t.partition, o) == g for o in range(t.start, t.stop))


def test_the_plan_is_a_pure_function_of_the_index() -> None:
    """A replay (restore) reads the very offsets the first attempt read."""
    a, b = TakePlan([0, 1], {0: 0, 1: 7}, 2), TakePlan([0, 1], {0: 0, 1: 7}, 2)
    assert [a.take(g) for g in range(50)] == [b.take(g) for g in reversed(range(50))][::-1]


@pytest.mark.parametrize(("parts", "world", "expect"), [
    (4, 2, {0: [0, 2], 1: [1, 3]}),
    (2, 2, {0: [0], 1: [1]}),
    (1, 2, {0: [0], 1: [0]}),  # not a multiple: every rank reads every partition
    (3, 2, {0: [0, 1, 2], 1: [0, 1, 2]}),
])
def test_rank_partitions(parts: int, world: int, expect: dict) -> None:
    plan = TakePlan(list(range(parts)), dict.fromkeys(range(parts), 0), 1)
    assert {r: plan.rank_partitions(r, world) for r in range(world)} == expect
    for g in range(4 * parts):  # rank g % p's takes lie in its partitions
        assert plan.take(g).partition in plan.rank_partitions(g % world, world)


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        TakePlan([], {}, 1)
    with pytest.raises(ValueError, match="no base offset"):
        TakePlan([0, 1], {0: 0}, 1)
    with pytest.raises(ValueError, match="per_take"):
        TakePlan([0], {0: 0}, 0)


@dataclass
class _Msg:
    p: int
    o: int
    v: bytes

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes:
        return self.v


class _Consumer:
    """A partition log; ``consume`` returns at most ``chunk`` messages from the assigned positions, and only
    the first ``available`` offsets of each partition exist (a live topic)."""

    def __init__(self, logs: dict[int, list[bytes]], chunk: int) -> None:
        self.logs, self.chunk, self.pos, self.available = logs, chunk, {}, 10**9
        self.assigns = 0

    def assign(self, tps: list) -> None:
        self.assigns += 1
        self.pos = {tp.partition: tp.offset for tp in tps}

    def consume(self, n: int, timeout: float) -> list[_Msg]:
        out = []
        for p in sorted(self.pos):
            while len(out) < min(n, self.chunk) and self.pos[p] < min(len(self.logs[p]), self.available):
                out.append(_Msg(p, self.pos[p], self.logs[p][self.pos[p]]))
                self.pos[p] += 1
        return out


def _reader(logs: dict[int, list[bytes]], per: int, chunk: int = 3) -> tuple[KafkaBatches, _Consumer]:
    r = KafkaBatches.__new__(KafkaBatches)
    r.k = JobConfig.model_validate({"source": {"kind": "kafka", "kafka": KAFKA}}).source.kafka
    r.cache, r.cursor, r.per_take = {}, {}, per
    r.consumer = _Consumer(logs, chunk)
    r.plan = TakePlan(sorted(logs), dict.fromkeys(logs, 0), per)
    return r, r.consumer


def test_each_rank_reads_exactly_its_takes_whatever_the_polls_return() -> None:
    logs = {0: [b"a%d" % i for i in range(20)], 1: [b"b%d" % i for i in range(20)]}
    for chunk in (1, 3, 50):
        for rank in (0, 1):
            r, _ = _reader(logs, per=2, chunk=chunk)
            for g in range(rank, 16, 2):
                t = r.plan.take(g)
                assert r._messages(g, 5.0) == logs[t.partition][t.start:t.stop]
            assert sum(map(len, r.cache.values())) <= chunk + 2  # what was read beyond the take is dropped


def test_a_take_waits_for_its_last_message_and_a_replay_reads_the_same_offsets() -> None:
    logs = {0: [b"m%d" % i for i in range(10)]}
    r, c = _reader(logs, per=4)
    c.available = 6
    assert r._messages(0, 5.0) == logs[0][0:4]
    assert r._messages(1, 0.05) is None  # offsets 4..7: 6 and 7 not there yet, no short take
    c.available = 10
    assert r._messages(1, 5.0) == logs[0][4:8]
    assert r._messages(0, 5.0) == logs[0][0:4]  # a replay seeks back
    assert r._messages(1, 5.0) == logs[0][4:8]


def test_an_arrow_take_is_one_message() -> None:
    kafka = {"kind": "kafka", "kafka": {**KAFKA, "format": "arrow"}}
    assert per_take(JobConfig.model_validate({"source": kafka})) == 1
    cfg = JobConfig.model_validate({"source": {**kafka, "kafka": KAFKA},
                                    "parallel": {"sync_take_messages": 64}})
    assert per_take(cfg) == 64


@pytest.mark.parametrize(("before", "after"), [(2, 1), (2, 4), (4, 2)])
def test_a_rescale_from_a_savepoint_reads_every_message_once(before: int, after: int) -> None:
    """Take ``g`` does not depend on p: a job stopped with a savepoint after take ``x`` at p=``before`` and
    resumed at p=``after`` (the index source goes on at ``x + 1``, rank ``g % p`` reads take ``g``) reads every
    message of the topic once, in the same takes as an unscaled run."""
    logs = {0: [b"a%d" % i for i in range(24)], 1: [b"b%d" % i for i in range(24)]}
    x, end = 9, 24  # the savepoint after take 9; 24 takes of 2 messages over 2 partitions
    read: list[bytes] = []
    for world, takes in ((before, range(0, x + 1)), (after, range(x + 1, end))):
        readers = [_reader(logs, per=2)[0] for _ in range(world)]  # a fresh consumer per rank and job
        for g in takes:
            read += readers[g % world]._messages(g, 5.0) or []
    assert sorted(read) == sorted(m for log in logs.values() for m in log)
    whole = _reader(logs, per=2)[0]
    assert read == [m for g in range(end) for m in whole._messages(g, 5.0) or []]


def test_kafka_reads_by_offset_at_every_parallelism_with_sync_steps() -> None:
    from flinkdl.pipeline.kafka_train import sync_kafka

    kafka = {"kind": "kafka", "kafka": {**KAFKA, "reader": "python"}}
    for p in (1, 2, 4):
        cfg = JobConfig.model_validate({"source": kafka, "job": {"parallelism": p}, "ps": {"enabled": True},
                                        "parallel": {"sync_steps": True}})
        assert sync_kafka(cfg)
    assert not sync_kafka(JobConfig.model_validate({"source": kafka}))


@pytest.mark.parametrize("fmt", ["arrow", "csv"])
def test_a_take_is_one_envelope_of_its_messages(fmt: str) -> None:
    """The reader featurizes take ``g`` into one envelope (sequence ``g``) whose event ids are its messages'."""
    import numpy as np

    from flinkdl.config.loader import load_config
    from flinkdl.devtools.produce import encode, generator_batches
    from flinkdl.exchange.channel import unpack
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.pipeline.featurize import FeatureMaker

    cfg = load_config(Path(__file__).parents[2] / "jobs" / "click_stream_kafka.yaml",
                      ["source.kafka.bootstrap_servers=127.0.0.1:9", f"source.kafka.format={fmt}",
                       "features.hash_bits=12", "parallel.sync_take_messages=32"])
    msgs = [m for b in generator_batches(128, batch_size=32) for m in encode(b, fmt)]
    r = KafkaBatches(cfg, cfg.source.kafka, FeatureMaker.from_config(cfg), 1, 2)
    r.consumer = _Consumer({0: msgs}, chunk=7)
    r.plan = TakePlan([0], {0: 0}, r.per_take)
    schema = FeatureLayout.from_config(cfg.features).schema()
    for g in (1, 3, 1):  # rank 1's takes, then a replay of take 1
        env = r.make(g)
        assert env.seq == g and env.rows_in == 32
        ids = unpack(env.payload, schema).column("event_id").to_numpy()
        assert np.array_equal(np.sort(ids), np.arange(32 * g, 32 * (g + 1)))
