"""``parallel:``: how the workers of a job at ``job.parallelism`` > 1 train together."""

from __future__ import annotations

from pydantic import Field

from flinkdl.config.base import Strict


class ParallelConfig(Strict):
    """``sync_steps``: synchronous data-parallel steps (docs/EXACTLY_ONCE.md, "Synchronous steps").

    Every micro-step, each worker sums all workers' gradients (exchanged through the parameter
    server, shard 0) in rank order and applies the sum: the replicas stay equal, and a job at
    parallelism p learns as one at parallelism 1: each worker gets a 1/p share of every step's rows
    (:mod:`flinkdl.parallel.deal`), so ``model.micro_batch_rows`` counts the rows of one synchronous
    step over all workers. Off: each worker steps on its own batches and pushes deltas
    (asynchronous; docs/DESIGN.md).
    """

    sync_steps: bool = Field(False, description="all workers step together on the sum of their gradients "
                             "(needs ps.enabled and the generator or the Python Kafka reader; at parallelism 1 "
                             "it only makes Kafka read by offset, so a rescaled job keeps its takes)")
    timeout_s: float = Field(120.0, gt=0, description="a step that waits longer for another worker's gradients "
                             "fails, naming the missing workers (Flink then restarts the job)")
    sync_take_messages: int = Field(1024, ge=1, description="Kafka csv/json at sync_steps: the messages (rows) of "
                                    "one take, read by offset (an Arrow take is one message; "
                                    "flinkdl/parallel/kafka_plan.py)")


def check_sync_steps(cfg: ParallelConfig, parallelism: int, ps_enabled: bool, source_kind: str, model: str,
                     fresh_scores: bool, exactly_once: bool, step_rows: int, kafka_reader: str | None = None,
                     feedback: bool = False) -> None:
    """Refuse a ``parallel.sync_steps`` job this version cannot keep in step (a ``ValueError`` naming the key).
    ``exactly_once`` is accepted (every rank restores one PS version: :mod:`flinkdl.parallel.restore`).
    ``kafka_reader``: ``source.kafka.reader`` (Kafka takes by offset need the Python reader); ``feedback``: a
    ``feedback:`` section is set (its label join is not read by offset)."""
    if not cfg.sync_steps or parallelism == 1:
        return
    if not ps_enabled:
        raise ValueError("parallel.sync_steps needs ps.enabled: true (the workers exchange gradients through it)")
    if source_kind == "kafka" and kafka_reader != "python":
        raise ValueError(f"parallel.sync_steps on Kafka needs source.kafka.reader: python (takes read by offset); "
                         f"got {kafka_reader!r}")
    if source_kind == "kafka" and feedback:
        raise ValueError("parallel.sync_steps does not support a feedback: section (its join is not read by offset)")
    if source_kind not in ("generator", "kafka"):
        raise ValueError(f"parallel.sync_steps needs source.kind: generator or kafka (batches dealt by index); "
                         f"got {source_kind!r}")
    if model in ("dynamic", "ensemble") or fresh_scores:
        raise ValueError("parallel.sync_steps supports the models with static tables (lr, fm, deepfm, custom), "
                         "without model.fresh_scores")
    if step_rows % parallelism:
        raise ValueError(f"parallel.sync_steps: model.micro_batch_rows (or, without it, source.generator.batch_size) "
                         f"= {step_rows} must be a multiple of job.parallelism = {parallelism} (each worker takes an "
                         "equal share of every step)")
