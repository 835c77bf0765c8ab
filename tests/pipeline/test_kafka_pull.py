"""KafkaPull without Flink or a broker: offsets kept in state, restored on open, fetched messages featurized."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from flinkdl.config.loader import load_config
from flinkdl.devtools.produce import encode, generator_batches
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.letters import decode_letters
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.pipeline import kafka_pull
from flinkdl.pipeline.kafka_pull import KafkaPull, consumer_config, start_offsets

JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_stream_kafka.yaml"


class _State:
    def __init__(self, value: str | None = None) -> None:
        self.v = value

    def value(self) -> str | None:
        return self.v

    def update(self, v: str) -> None:
        self.v = v


class _Msg:
    def __init__(self, partition: int, offset: int, value: bytes | None) -> None:
        self._p, self._o, self._v = partition, offset, value

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v


class _Consumer:
    """Two partitions; `committed` knows partition 0 only; hands out `queued` on the first consume."""

    def __init__(self, queued: list[_Msg]) -> None:
        self.queued, self.assigned, self.commits = queued, None, []

    def list_topics(self, topic, timeout):
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None, 1: None})})

    def committed(self, tps, timeout):
        return [TopicPartition(t.topic, t.partition, 40 if t.partition == 0 else -1001) for t in tps]

    def assign(self, tps) -> None:
        self.assigned = [(t.partition, t.offset) for t in tps]

    def consume(self, n, timeout):
        out, self.queued = self.queued[:n], self.queued[n:]
        return out

    def commit(self, offsets, asynchronous) -> None:
        self.commits.append(sorted((t.partition, t.offset) for t in offsets))

    def close(self) -> None:
        pass


def _op(tmp_path, state: _State, consumer: _Consumer, monkeypatch, *sets: str) -> KafkaPull:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "source.kafka.reader=python", *sets])
    op = KafkaPull(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0, get_state=lambda _d: state))
    monkeypatch.setattr("confluent_kafka.Consumer", lambda conf: consumer)
    return op


def test_start_offsets_checkpoint_first_then_the_policy() -> None:
    cfg = load_config(JOB, ["source.kafka.reader=python"])
    k, c = cfg.source.kafka, _Consumer([])
    got = start_offsets(k, c, [0, 1, 2], {2: 7})
    assert [(t.partition, t.offset) for t in got] == [(0, 40), (1, OFFSET_BEGINNING), (2, 7)]
    latest = k.model_copy(update={"starting_offsets": "latest"})
    assert [t.offset for t in start_offsets(latest, c, [0, 1], {})] == [OFFSET_END, OFFSET_END]
    conf = consumer_config(k.model_copy(update={"properties": {"security.protocol": "SSL"}}))
    assert conf["enable.auto.commit"] is False and conf["security.protocol"] == "SSL"


def test_a_tick_featurizes_what_was_fetched_and_keeps_the_next_offsets(tmp_path, monkeypatch) -> None:
    msgs = encode(next(generator_batches(6, 6)), "csv")
    fetched = [_Msg(0, 40 + i, m) for i, m in enumerate(msgs[:4])] + [_Msg(1, 0, msgs[4]), _Msg(1, 1, None)]
    state, consumer = _State('{"1": 0}'), _Consumer(fetched)
    op = _op(tmp_path, state, consumer, monkeypatch)
    envs = [Envelope.of(r) for r in op.process_element(0, None)]
    assert consumer.assigned == [(0, 40), (1, 0)]  # partition 1 from the checkpoint, 0 from the group
    schema = FeatureLayout.from_config(load_config(JOB).features).schema()
    ids = [i for e in envs for i in unpack(e.payload, schema).column("event_id").to_pylist()]
    dead = [d for e in envs for d in decode_letters(e.dead_letters).dead]
    assert ids == [0, 1, 2, 3, 4] and sum(e.rows_in for e in envs) == 6
    assert [d["reason"] for d in dead] == ["empty"]  # the tombstone
    assert json.loads(state.v) == {"0": 44, "1": 2} and consumer.commits == [[(0, 44), (1, 2)]]
    assert list(op.process_element(0, None)) == [] and json.loads(state.v) == {"0": 44, "1": 2}


def test_arrow_messages_cross_one_by_one_and_a_chunk_is_bounded(tmp_path, monkeypatch) -> None:
    batches = [encode(b, "arrow")[0] for b in generator_batches(8, 4)]
    consumer = _Consumer([_Msg(0, i, b) for i, b in enumerate(batches)])
    monkeypatch.setattr(kafka_pull, "ARROW_MESSAGES", 1)
    op = _op(tmp_path, _State(), consumer, monkeypatch, "source.kafka.format=arrow")
    first = [Envelope.of(r) for r in op.process_element(0, None)]
    second = [Envelope.of(r) for r in op.process_element(0, None)]
    assert [e.rows_in for e in first] == [4] and [e.rows_in for e in second] == [4]
    assert consumer.assigned == [(0, 40), (1, OFFSET_BEGINNING)] and consumer.commits[-1] == [(0, 2)]


def test_a_backlog_is_taken_in_whole_steps(tmp_path, monkeypatch) -> None:
    msgs = encode(next(generator_batches(10, 10)), "csv")
    consumer = _Consumer([_Msg(0, i, m) for i, m in enumerate(msgs)])
    monkeypatch.setattr(kafka_pull, "MAX_MESSAGES", 7)
    op = _op(tmp_path, _State(), consumer, monkeypatch, "source.max_batch_rows=3")
    sizes = [[Envelope.of(r).rows_in for r in op.process_element(0, None)] for _ in range(4)]
    assert sizes == [[3, 3], [3, 1], [], []]  # 7 rounded down to two steps of 3; then what is left
