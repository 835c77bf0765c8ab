"""Train: feature envelopes → this subtask's TF worker → prediction envelopes.

:class:`Train` takes feature envelopes from a source operator; :class:`GenerateAndTrain` takes
the generator's batch indexes and makes the batches itself (:mod:`flinkdl.pipeline.generate`).
"""

from __future__ import annotations

from collections.abc import Callable

from pyflink.common import Row
from pyflink.datastream import RuntimeContext

from flinkdl.exchange.channel import pack, unpack
from flinkdl.exchange.envelope import ENVELOPE_TYPE, Envelope
from flinkdl.exchange.schema import EMPTY_PREDICTIONS
from flinkdl.feedback.esdfm_rows import job_layout
from flinkdl.parallel.kafka_batches import KafkaBatches
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.flow import INDEX_TYPE, index_of, throttle, with_ballast
from flinkdl.pipeline.generate import BatchGenerator
from flinkdl.pipeline.operator import section
from flinkdl.pipeline.ps_cut import ANCHORS
from flinkdl.pipeline.recovery import ExactlyOnceFunction
from flinkdl.pipeline.routing import subtask_index


class Train(ExactlyOnceFunction):
    """Feeds each feature batch to this subtask's TF worker and emits its predictions.

    Exactly-once (see :mod:`flinkdl.pipeline.recovery`): the anchor is the PS version the worker
    last committed (at parallelism > 1: the segment of its writer lane), which includes every batch
    before the tail; ``reset`` rolls the PS (that lane) back to it and starts a worker, which loads it.
    A worker that dies mid-stream is recovered the same way
    in place, without failing the Flink task.
    """

    tail_type = ENVELOPE_TYPE
    anchor_tag = ANCHORS

    def start(self, ctx: RuntimeContext) -> None:
        from flinkdl.pipeline.freshness import TrainedWatermark
        from flinkdl.worker.supervisor import WorkerSupervisor

        self.watermark = TrainedWatermark(self.cfg.ps)
        self.schema = job_layout(self.cfg).schema()  # weighted under feedback.strategy: es_dfm
        self.throttle = throttle(self.cfg.worker.max_rows_per_s)
        self.worker = WorkerSupervisor(self.cfg, subtask_index(ctx))
        self.sync = self.cfg.parallel.sync_steps and self.cfg.job.parallelism > 1  # flinkdl/parallel
        # anchors are writer-lane segments (synchronous steps: rank 0's versions, flinkdl/parallel/restore.py)
        self.lanes = self.exactly_once and self.cfg.job.parallelism > 1 and not self.sync
        self.emit_anchors = self.lanes  # to PsCut (flinkdl/pipeline/ps_cut.py)
        if not self.exactly_once:  # else reset() starts it, from the right PS version
            self.worker.start()

    def reset(self, anchor: dict | None) -> dict:
        from flinkdl.pipeline.ps_anchor import reset_to_version
        from flinkdl.worker.ps_sync import writer_name

        self.worker.kill()
        out = reset_to_version(self.cfg.ps, anchor, self.worker.start, writer_name(self.cfg.ps, self.worker.subtask),
                               lanes=self.lanes)
        return {**out, "parallelism": self.cfg.job.parallelism} if self.lanes else out

    def stale(self, anchor: dict) -> bool:
        """An anchor of another parallelism (a job resumed rescaled from a savepoint): the trainers of
        that job pushed and committed their tails when they closed, so the PS already holds them."""
        return int(anchor.get("parallelism", 1)) != self.cfg.job.parallelism

    def apply(self, value: Row, replay: bool = False) -> tuple[list[Row], dict | None]:
        return self.train(Envelope.of(value), replay)

    def train(self, env: Envelope, replay: bool = False,
              meanwhile: Callable[[], None] | None = None) -> tuple[list[Row], dict | None]:
        """Train on one feature envelope; ``meanwhile`` runs while the worker trains on it."""
        rows = unpack(env.payload, self.schema).num_rows
        if rows == 0:  # every row of the batch was a dead letter
            return [env.with_payload(EMPTY_PREDICTIONS).row()], None
        if self.throttle is not None and not replay:
            self.throttle.wait(rows)
        preds, version = self.worker.process(env.payload, rows, self.recover if self.exactly_once else None,
                                             self._overlapped(meanwhile))
        out = self.watermark.stamp(env.with_payload(pack(preds)), preds, None if self.lanes else version)
        if version is None:
            return [out.row()], None
        if self.lanes:
            from flinkdl.worker.ps_sync import writer_name

            return [out.row()], {"writer": writer_name(self.cfg.ps, self.worker.subtask), "seq": version,
                                 "parallelism": self.cfg.job.parallelism}
        return [out.row()], {"ps_version": version}

    def during_step(self) -> None:
        """Work of a subclass that overlaps every step (before ``meanwhile``); none here."""

    def more_soon(self) -> bool:
        """Whether another step follows right after this one (a subclass's make-ahead knows)."""
        return False

    def _overlapped(self, meanwhile: Callable[[], None] | None) -> Callable[[], None]:
        def both() -> None:
            self.during_step()
            if meanwhile is not None:
                meanwhile()

        return both

    def close(self) -> None:
        if getattr(self, "worker", None) is not None:
            self.worker.stop()
        if getattr(self, "watermark", None) is not None:
            self.watermark.close()


class GenerateAndTrain(Train):
    """The generator's batch index → generate + featurize → TF worker, in one operator.

    Only the index crosses the JVM, not a feature batch (which would cross it twice); and while the
    worker trains on batch ``i`` this makes batch ``i + p``, the next one this subtask gets (index
    ``i`` goes to subtask ``i % p``, see ``job.build``), so generating overlaps training as it did
    in an operator of its own. Generation is a pure function of the index, so the exactly-once
    tail keeps indexes (:data:`~flinkdl.pipeline.flow.INDEX_TYPE`), not batches, and a replay makes
    the same batches again.
    """

    tail_type = INDEX_TYPE

    def start(self, ctx: RuntimeContext) -> None:
        super().start(ctx)
        maker = FeatureMaker.from_config(self.cfg)
        self.generator: BatchGenerator | KafkaBatches = BatchGenerator(self.cfg.source.generator, maker)
        if self.cfg.source.kind == "kafka":  # takes of the topic by offset (flinkdl/parallel/kafka_batches.py)
            self.generator = KafkaBatches(self.cfg, section(self.cfg.source.kafka, "source.kafka"), maker,
                                          subtask_index(ctx), self.cfg.job.parallelism)
        elif self.cfg.parallel.sync_steps and self.cfg.job.parallelism > 1:  # a share of every batch per rank
            from flinkdl.parallel.deal import SharedBatchGenerator

            self.generator = SharedBatchGenerator(
                self.cfg.source.generator, maker, subtask_index(ctx),
                self.cfg.job.parallelism, self.cfg.model.micro_batch_rows or self.cfg.source.generator.batch_size)
        self.stride = self.cfg.job.parallelism
        self.made: tuple[int, Envelope] | None = None  # the batch made ahead: (index, envelope)
        self.rank, self.attempt, self.resets = subtask_index(ctx), _attempt(ctx), 0
        self.replay_first: range = range(0)  # synchronous steps: batches to re-train before the tail

    def reset(self, anchor: dict | None) -> dict:
        """Synchronous steps: every rank restarts from the earliest anchor of all ranks
        (:mod:`flinkdl.parallel.restore`) and re-trains its batches from there to its own anchor."""
        if not self.sync:
            return super().reset(anchor)
        from flinkdl.parallel.restore import Target, catch_up, reset_sync, restore_key

        self.worker.kill()
        cfg = self.cfg
        own = anchor or {"batch": index_of(self.first_element) // self.stride}  # a fresh start: at this element
        key = restore_key(cfg.ps.table_prefix, str(cfg.job.run_dir), self.attempt, self.resets)
        self.resets += 1
        wait = cfg.parallel.timeout_s + cfg.worker.step_timeout_s + cfg.worker.start_timeout_s  # others' failures
        target = reset_sync(cfg.ps, key, self.rank, self.stride, own, wait, self.worker.start)
        self.replay_first = catch_up(own, Target(target["batch"], target["ps_version"]))
        return {**target, "parallelism": self.stride}

    def before_tail(self) -> list[Row]:
        first, self.replay_first = self.replay_first, range(0)
        return [with_ballast(i * self.stride + self.rank) for i in first]

    def apply(self, value: Row, replay: bool = False) -> tuple[list[Row], dict | None]:
        index = index_of(value)
        made, self.made = self.made, None
        env = made[1] if made is not None and made[0] == index else self.generator.make(index)
        out, anchor = self.train(env, replay, lambda: self._make_ahead(index + self.stride))
        if anchor is not None and self.sync:  # the version holds every rank's batches up to this one
            anchor = {**anchor, "batch": index // self.stride + 1, "parallelism": self.stride}
        return out, anchor

    def _make_ahead(self, index: int) -> None:
        if self.generator.exists(index):
            self.made = (index, self.generator.make(index))

    def more_soon(self) -> bool:
        return self.made is not None  # the next batch exists and is made: its index comes next

    def close(self) -> None:
        generator = getattr(self, "generator", None)
        if isinstance(generator, KafkaBatches):
            generator.close()
        super().close()


def _attempt(ctx: RuntimeContext) -> int:
    """This task's Flink attempt number (process and thread mode)."""
    try:
        return int(ctx.get_attempt_number())
    except Exception:
        return int(ctx._runtime_context.getTaskInfo().getAttemptNumber())
