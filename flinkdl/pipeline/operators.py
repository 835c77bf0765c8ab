"""The Python functions of the Flink job, one per stage of the data path.

Every element is a whole batch (an :data:`ENVELOPE` row), never a single event: PyFlink
charges 10-25 µs per element crossing, which a 4096-row batch amortises to nothing.

``GenerateFeatures`` / ``ParseFeatures`` (source → parse + hash → Arrow batch)
→ ``Train`` (Arrow IPC over a unix socket → TF worker → predictions)
→ ``EvaluateAndSink`` (progressive metrics, prediction file, dead-letter file, metrics log).

Functions carry the job config as JSON (they are pickled to the Python workers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyflink.common import Row, Types
from pyflink.datastream import FlatMapFunction, MapFunction, RuntimeContext

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import pack, unpack
from flinkdl.features.layout import PREDICTION_SCHEMA, FeatureLayout

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


def _dead_lines(dead) -> bytes:
    return "".join(d.to_json() + "\n" for d in dead).encode()


class _Featurize:
    """Shared by both sources: raw batch → (feature envelope)."""

    def __init__(self, cfg_json: str):
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.features.transform import Featurizer

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

    def map(self, index: int) -> Row:
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
        from flinkdl.features.parse import parse_text

        text, lines = chunk[0], chunk[1]
        d = self.cfg.source.directory
        raw, dead = parse_text(text, d, self.cfg.features, self.position, pad_short_rows=d.pad_short_rows)
        rows_in = raw.num_rows + len(dead)
        yield self.envelope((self.subtask << 40) | self.seq, raw, rows_in, dead, self.position)
        self.seq += 1
        self.position += lines


class Train(MapFunction):
    """Feeds each feature batch to this subtask's TF worker and emits its predictions."""

    def __init__(self, cfg_json: str):
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.worker.supervisor import WorkerSupervisor

        self.cfg = JobConfig.model_validate_json(self.cfg_json)
        self.schema = FeatureLayout.from_config(self.cfg.features).schema()
        self.worker = WorkerSupervisor(self.cfg, subtask_index(ctx))
        self.worker.start()

    def map(self, env: Row) -> Row:
        rows = unpack(env[2], self.schema).num_rows
        if rows == 0:  # every row of the batch was a dead letter
            return Row(env[0], env[1], _EMPTY_PREDICTIONS, env[3], env[4])
        return Row(env[0], env[1], pack(self.worker.process(env[2], rows)), env[3], env[4])

    def close(self) -> None:
        if getattr(self, "worker", None) is not None:
            self.worker.stop()


_EMPTY_PREDICTIONS = pack(pa.record_batch([pa.array([], f.type) for f in PREDICTION_SCHEMA],
                                          schema=PREDICTION_SCHEMA))


class EvaluateAndSink(FlatMapFunction):
    """Parallelism 1: progressive metrics over all subtasks, prediction + dead-letter files,
    and the run's metrics log (``RUN_DIR/metrics.jsonl``, last line = final summary)."""

    def __init__(self, cfg_json: str, max_events: int | None = None):
        self.cfg_json = cfg_json
        self.max_events = max_events

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.pipeline.progress import RunProgress

        self.cfg = JobConfig.model_validate_json(self.cfg_json)
        self.progress = RunProgress(self.cfg, self.max_events)

    def flat_map(self, env: Row) -> Iterator[str]:
        self.progress.update(env[1], unpack(env[2], PREDICTION_SCHEMA), env[3], env[4])
        return iter(())

    def close(self) -> None:
        if getattr(self, "progress", None) is not None:
            self.progress.finish()
