"""The end of the job at ``job.parallelism > 1``: partial evaluation per subtask, one small aggregator.

::

    Train (p) ─keyBy subtask─► EvaluatePartial (p: prediction + dead-letter parts, partial counts)
                               ─► Aggregate (1: merged counts → metrics.jsonl, Prometheus)

Only counts cross to the aggregator, one :class:`~flinkdl.evaluation.partial.Partial` per subtask
and report (``job.report_every_s``), so its work per event shrinks as reports grow and does not grow
with the parallelism (``bench/aggregator.py``).

Exactly-once (:mod:`flinkdl.pipeline.recovery`): a subtask sends a partial only together with a
new anchor (its output file sizes, its partial counts then empty), so its tail never spans a sent
partial and a replay re-counts exactly the batches the aggregator has not got; with
``job.exactly_once`` it sends one with every batch, so its tail is empty (a partial then holds at
most one batch's cells). The aggregator keeps the partials after its last snapshot
(``RUN_DIR/state/aggregate-*.pkl``) as its tail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, RuntimeContext

from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import ENVELOPE_TYPE, Envelope
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.pipeline.routing import subtask_index, subtask_keys
from flinkdl.pipeline.sink import Reporting, run_length

#: A partial on the wire: the sending subtask and :meth:`Partial.encode` bytes.
PARTIAL_TYPE = Types.ROW_NAMED(["subtask", "data"], [Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE())])


def last_for_subtask(index: int, events: int | None, batch_size: int, parallelism: int) -> bool:
    """Whether generator batch ``index`` is the last of a bounded stream that its subtask gets
    (batch ``i`` goes to subtask ``i % p``; a pure function, so a replay or a rescaled job agrees).

    >>> [last_for_subtask(i, 10, 3, 2) for i in range(4)]  # batches of 3, 3, 3, 1
    [False, False, True, True]
    """
    return events is not None and (index + parallelism) * batch_size >= events


class EvaluatePartial(Reporting):
    """Parallelism p: this subtask's prediction and dead-letter files, and its partial evaluation."""

    tail_type = ENVELOPE_TYPE

    def start(self, ctx: RuntimeContext) -> None:
        from flinkdl.sinks.partial_log import PartialLog

        super().start(ctx)
        self.subtask = subtask_index(ctx)
        self.log = PartialLog(self.cfg, self.subtask)
        self.clock = time.monotonic
        self._sent_t = self.clock()
        self.generator = self.cfg.source.generator if self.cfg.source.kind == "generator" else None

    def reset(self, anchor: dict | None) -> dict:
        if anchor is not None:
            self.log.cut(anchor["files"])
            return anchor
        return self._position()

    def _position(self) -> dict:
        """This subtask's anchor: how far its output files go, and which subtask of which parallelism wrote them."""
        return {"files": self.log.files(), "subtask": self.subtask, "parallelism": self.cfg.job.parallelism}

    def stale(self, anchor: dict) -> bool:
        """An anchor of another subtask or parallelism (a job rescaled from a savepoint, whose keys
        land on other subtasks): its files belong to a subtask that may be writing them again, so
        they are left as they are (its tail is empty: exactly-once sends a partial with every batch)."""
        return anchor.get("subtask") != self.subtask or anchor.get("parallelism") != self.cfg.job.parallelism

    def apply(self, value: Row, replay: bool = False) -> tuple[list, dict | None]:
        env = Envelope.of(value)
        self.log.update(env.rows_in, unpack(env.payload, PREDICTION_SCHEMA), env.dead_letters, env.eval_columns)
        gen = self.generator
        last = gen is not None and last_for_subtask(env.seq, gen.events, gen.batch_size, self.cfg.job.parallelism)
        # Exactly-once sends with every batch: the tail then stays empty, so a job rescaled from a
        # savepoint (whose keys and subtasks differ) has no counts left in a tail nobody replays.
        due = self.exactly_once or self.clock() - self._sent_t >= self.cfg.job.report_every_s
        if replay or not (last or due):
            return [], None  # (a replay never sends: what it counts goes with the next partial)
        return self._send()

    def _send(self) -> tuple[list, dict]:
        self._sent_t = self.clock()
        row = Row(self.subtask, self.log.take().encode())
        return [row], self._position()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        if not self.log.pending:
            return
        out, anchor = self._send()
        if self.exactly_once:
            self._record(None, anchor)
        yield from out

    def close(self) -> None:
        if getattr(self, "log", None) is not None:
            self.log.close()


class Aggregate(Reporting):
    """Parallelism 1: merges the partials into the run's summary (``RUN_DIR/metrics.jsonl``)."""

    tail_type = PARTIAL_TYPE

    def __init__(self, cfg_json: str, max_events: int | None = None) -> None:
        super().__init__(cfg_json)
        self.max_events = max_events

    def start(self, ctx: RuntimeContext) -> None:
        from flinkdl.sinks.aggregate_log import AggregateLog

        super().start(ctx)
        self.log = AggregateLog(self.cfg, run_length(self.cfg, self.max_events))
        self.clock = time.monotonic
        self._snapshot_t = self.clock()

    def reset(self, anchor: dict | None) -> dict:
        if anchor is not None:
            self.log.load_state(anchor["snapshot"])
            return anchor
        return self._snapshot()

    def _snapshot(self) -> dict:
        self._snapshot_t = self.clock()
        return {"snapshot": str(self.log.save_state())}

    def apply(self, value: Row, replay: bool = False) -> tuple[list, dict | None]:
        from flinkdl.evaluation.partial import Partial

        self.log.add(Partial.decode(bytes(value[1])))
        due = self.exactly_once and self.clock() - self._snapshot_t >= self.cfg.job.snapshot_every_s
        return [], self._snapshot() if due and not self.log.done else None

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        self.log.flush()
        yield from ()

    def close(self) -> None:
        if getattr(self, "log", None) is not None:
            self.log.finish()


def evaluate_in_parallel(preds: DataStream, cfg_json: str, parallelism: int, max_events: int | None) -> None:
    """Add the partial evaluators (one per subtask, as the trainers) and the aggregator after ``preds``."""
    keys = subtask_keys(parallelism)

    def by_seq(row: Row) -> int:
        return keys[Envelope.of(row).seq % len(keys)]

    partials = (preds.key_by(by_seq, key_type=Types.INT())
                .process(EvaluatePartial(cfg_json), output_type=PARTIAL_TYPE).name("evaluate-partial"))
    (partials.key_by(lambda row: 0, key_type=Types.INT())
     .process(Aggregate(cfg_json, max_events), output_type=Types.STRING())
     .name("aggregate").set_parallelism(1)
     .print().name("progress").set_parallelism(1))
