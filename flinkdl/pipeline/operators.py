"""The Python functions of the Flink job, one per stage of the data path.

Every element is a whole batch (an :data:`ENVELOPE` row), never a single event: PyFlink
charges 10-25 µs per element crossing, which a 4096-row batch amortises to nothing.

``GenerateFeatures`` / ``ParseFeatures`` (source → parse + hash → Arrow batch)
→ ``Train`` (Arrow IPC over a unix socket → TF worker → predictions)
→ ``EvaluateAndSink`` (progressive metrics, prediction file, dead-letter file, metrics log).

Functions carry the job config as JSON (they are pickled to the Python workers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pyarrow as pa
from pyflink.common import Row, Types
from pyflink.datastream import FlatMapFunction, MapFunction, RuntimeContext

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import pack, unpack
from flinkdl.features.layout import PREDICTION_SCHEMA, FeatureLayout
from flinkdl.pipeline.lifeline import exit_with_taskmanager
from flinkdl.pipeline.recovery import ExactlyOnceFunction

#: One batch on its way through the job: ``seq`` (source position of the batch), ``rows_in``
#: (raw events it covers, good and bad), ``payload`` (packed Arrow batch: features, then
#: predictions), ``dead_letters`` (JSON lines, one per rejected event) and ``meta`` (empty, or an
#: Arrow IPC stream of the evaluation columns ``ts``/``slice`` of the good rows, see
#: :mod:`flinkdl.evaluation.meta`; the trainer passes it through to the evaluator).
ENVELOPE = Types.ROW_NAMED(
    ["seq", "rows_in", "payload", "dead_letters", "meta"],
    [Types.LONG(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE()),
     Types.PRIMITIVE_ARRAY(Types.BYTE())],
)


def subtask_index(ctx: RuntimeContext) -> int:
    """Works in process and thread mode (thread mode's getters raise, see docs/STACK_NOTES.md)."""
    try:
        return ctx.get_index_of_this_subtask()
    except Exception:  # noqa: BLE001 - thread mode
        return ctx._runtime_context.getTaskInfo().getIndexOfThisSubtask()


class Throttle:
    """At most ``rate`` units per second of wall time (a call to :meth:`wait` takes ``units``, one
    by default), never in bursts: a call that comes late (the job was backpressured) does not
    earn credit for the calls after it.

    >>> t = Throttle(1000.0); t.wait(); t.wait()  # the second call returns ~1 ms after the first
    """

    def __init__(self, rate: float) -> None:
        self.interval, self.next = 1.0 / rate, 0.0

    def wait(self, units: float = 1.0) -> None:
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + units * self.interval


def _dead_lines(dead) -> bytes:
    return "".join(d.to_json() + "\n" for d in dead).encode()


class _Featurize:
    """Shared by both sources: raw batch → (feature envelope)."""

    def __init__(self, cfg_json: str):
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.features.transform import Featurizer

        exit_with_taskmanager()
        self.cfg = JobConfig.model_validate_json(self.cfg_json)
        directory = self.cfg.source.directory
        self.featurizer = Featurizer(self.cfg.features, delimiter=directory.delimiter if directory else ",")

    def envelope(self, seq: int, raw, rows_in: int, dead: list, position: int) -> Row:
        from flinkdl.evaluation.meta import eval_meta

        feats, more_dead = self.featurizer.transform(raw, position_offset=position)
        meta = eval_meta(raw, feats.num_rows, more_dead, position, self.cfg)
        return Row(seq, rows_in, pack(feats), _dead_lines(dead + more_dead), meta)


class GenerateFeatures(_Featurize, MapFunction):
    """Batch index (from Flink's NumberSequenceSource) → generated, featurized batch."""

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.sources.generator import ClickStream

        super().open(ctx)
        gen = self.cfg.source.generator
        self.stream = ClickStream.from_config(gen)
        self.size, self.events = gen.batch_size, gen.events
        self.throttle = Throttle(gen.max_rate_per_s / gen.batch_size) if gen.max_rate_per_s else None

    def exists(self, index: int) -> bool:
        """Whether the bounded stream has a batch ``index`` (an unbounded one has all)."""
        return self.events is None or index * self.size < self.events

    def map(self, index: int) -> Row:
        if self.throttle is not None:
            self.throttle.wait()
        raw = self.stream.batch(index, self.size)
        if self.events is not None and (index + 1) * self.size > self.events:
            raw = raw.slice(0, self.events - index * self.size)
        return self.envelope(index, raw, raw.num_rows, [], index * self.size)


class ParseFeatures(_Featurize, FlatMapFunction):
    """A chunk of text lines (from the watched directory) → parsed, featurized batch."""

    def open(self, ctx: RuntimeContext) -> None:
        super().open(ctx)
        self.subtask = subtask_index(ctx)
        self.seq = 0
        self.position = 0

    def flat_map(self, chunk: Row) -> Iterator[Row]:
        """One envelope per ``source.directory.max_batch_rows`` good rows of the chunk, each
        with its own ``seq`` and the dead letters among its rows (:func:`split_parsed`)."""
        from flinkdl.features.parse import parse_text, split_parsed

        text, lines = chunk[0], chunk[1]
        d = self.cfg.source.directory
        raw, dead = parse_text(text, d, self.cfg.features, self.position, pad_short_rows=d.pad_short_rows)
        for piece, piece_dead, rows_in, first in split_parsed(raw, dead, d.max_batch_rows, self.position):
            yield self.envelope((self.subtask << 40) | self.seq, piece, rows_in, piece_dead, first)
            self.seq += 1
        self.position += lines


class Train(ExactlyOnceFunction):
    """Feeds each feature batch to this subtask's TF worker and emits its predictions.

    Exactly-once (see :mod:`flinkdl.pipeline.recovery`): the anchor is the PS version the worker
    last committed, which includes every batch before the tail; ``reset`` rolls the PS back to it
    and starts a worker, which loads it. A worker that dies mid-stream is recovered the same way
    in place, without failing the Flink task.
    """

    tail_type = ENVELOPE

    def start(self, ctx: RuntimeContext) -> None:
        from flinkdl.worker.supervisor import WorkerSupervisor

        self.schema = FeatureLayout.from_config(self.cfg.features).schema()
        rate = self.cfg.worker.max_rows_per_s
        self.throttle = Throttle(rate) if rate else None
        self.worker = WorkerSupervisor(self.cfg, subtask_index(ctx))
        if not self.exactly_once:  # else reset() starts it, from the right PS version
            self.worker.start()

    def reset(self, anchor: dict | None) -> dict:
        from flinkdl.ps.client import PsClient
        from flinkdl.ps.store import PsError

        self.worker.kill()
        with PsClient.from_config(self.cfg.ps) as ps:
            if not ps.health()["checkpoint"]:
                raise PsError(f"job.exactly_once needs a PS with --checkpoint-dir; {ps.address} has none")
            if anchor is not None:
                ps.rollback(anchor["ps_version"])
            self.worker.start()  # loads what the PS holds now
            return anchor or {"ps_version": int(ps.commit()["version"])}

    def apply(self, env: Row, replay: bool = False,
              meanwhile: Callable[[], None] | None = None) -> tuple[list[Row], dict | None]:
        """Train on one feature envelope; ``meanwhile`` runs while the worker trains on it."""
        rows = unpack(env[2], self.schema).num_rows
        if rows == 0:  # every row of the batch was a dead letter
            return [Row(env[0], env[1], _EMPTY_PREDICTIONS, env[3], env[4])], None
        if self.throttle is not None and not replay:
            self.throttle.wait(rows)
        preds, version = self.worker.process(env[2], rows, self.recover if self.exactly_once else None, meanwhile)
        return [Row(env[0], env[1], pack(preds), env[3], env[4])], None if version is None else {"ps_version": version}

    def close(self) -> None:
        if getattr(self, "worker", None) is not None:
            self.worker.stop()


#: A batch index on its way to the trainer, with 32 KiB of ballast: Flink's credit-based flow
#: control counts network buffers (32 KiB), not records, so bare 8-byte indexes queued ~40,000
#: deep ahead of a busy trainer and a checkpoint or savepoint barrier waited behind all of them
#: (a stop-with-savepoint of an endless LR job timed out after 120 s). With one buffer per index,
#: about ten wait in the network, and a barrier waits for those plus the bundle.
INDEX = Types.ROW_NAMED(["index", "ballast"], [Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
_BALLAST = bytes(32 << 10)


def with_ballast(index: int) -> Row:
    return Row(index, _BALLAST)


class GenerateAndTrain(Train):
    """The generator's batch index → generate + featurize → TF worker, in one operator.

    Only the index crosses the JVM (a feature batch would cross it twice, 340 bytes per event, the
    JVM's largest cost); and while the worker trains on batch ``i`` this makes batch ``i + p``,
    the next one this subtask gets (index ``i`` goes to subtask ``i % p``, see ``job.build``),
    so generating overlaps training as it did in an operator of its own. Generation is a pure
    function of the index, so the exactly-once tail keeps indexes (:data:`INDEX`), not batches,
    and a replay makes the same batches again.
    """

    tail_type = INDEX

    def start(self, ctx: RuntimeContext) -> None:
        super().start(ctx)
        self.generate = GenerateFeatures(self.cfg_json)
        self.generate.open(ctx)
        self.stride = self.cfg.job.parallelism
        self.made: tuple[int, Row] | None = None  # the batch made ahead: (index, envelope)

    def apply(self, value: Row, replay: bool = False) -> tuple[list[Row], dict | None]:
        index = value[0]
        made, self.made = self.made, None
        env = made[1] if made is not None and made[0] == index else self.generate.map(index)
        return super().apply(env, replay, lambda: self._make_ahead(index + self.stride))

    def _make_ahead(self, index: int) -> None:
        if self.generate.exists(index):
            self.made = (index, self.generate.map(index))


_EMPTY_PREDICTIONS = pack(pa.record_batch([pa.array([], f.type) for f in PREDICTION_SCHEMA],
                                          schema=PREDICTION_SCHEMA))


class EvaluateAndSink(ExactlyOnceFunction):
    """Parallelism 1: progressive metrics over all subtasks, prediction + dead-letter files,
    and the run's metrics log (``RUN_DIR/metrics.jsonl``, last line = final summary).

    Exactly-once: the anchor is a snapshot file of the counters, metrics and output file sizes
    (every ``job.snapshot_every_s``); ``reset`` loads it and cuts the files back to those sizes.
    """

    tail_type = ENVELOPE

    def __init__(self, cfg_json: str, max_events: int | None = None):
        super().__init__(cfg_json)
        self.max_events = max_events

    def start(self, ctx: RuntimeContext) -> None:
        from flinkdl.sinks.run_log import RunLog as RunProgress

        # A bounded stream ends with its last event: the final line must not wait for close(),
        # which PyFlink does not call on a standalone cluster (docs/STACK_NOTES.md).
        src = self.cfg.source
        bounded = src.generator.events if src.kind == "generator" else None
        self.progress = RunProgress(self.cfg, self.max_events or bounded)
        self._snapshot_t = time.monotonic()

    def reset(self, anchor: dict | None) -> dict:
        if anchor is not None:
            self.progress.load_state(anchor["snapshot"])
            return anchor
        return self._snapshot()

    def apply(self, env: Row, replay: bool = False) -> tuple[list, dict | None]:
        self.progress.update(env[1], unpack(env[2], PREDICTION_SCHEMA), env[3], env[4])
        due = self.exactly_once and time.monotonic() - self._snapshot_t >= self.cfg.job.snapshot_every_s
        return [], self._snapshot() if due and not self.progress.done else None

    def _snapshot(self) -> dict:
        self._snapshot_t = time.monotonic()
        return {"snapshot": str(self.progress.save_state())}

    def close(self) -> None:
        if getattr(self, "progress", None) is not None:
            self.progress.finish()
