"""The TensorFlow worker process: Arrow stream in, prequential learning, predictions out.

Started by :class:`flinkdl.worker.supervisor.WorkerSupervisor` as
``python -m flinkdl.worker - IN_ENDPOINT OUT_PATH`` (the config JSON on stdin). It reads feature batches with
pyarrow (:class:`flinkdl.worker.feed.FeatureStream`, one Arrow RecordBatch = one step), and for each batch
scores it with the current model, trains on its labelled rows (one ``predict_then_train`` step,
so every score was made before the model saw that event; rows without a label are only scored),
and writes the scores back as an Arrow IPC stream
(:class:`flinkdl.exchange.worker_stream.PredictionStream`). Around each step it runs the hooks
the config asks for (:mod:`flinkdl.worker.hooks`: parameter-server sync, Prometheus export).
When a batch's step committed a parameter-server version, that batch's scores carry it in their
IPC custom metadata: the version includes that batch and every one before it, which is what the
exactly-once protocol of the Flink operator builds on (docs/EXACTLY_ONCE.md).
It exits when the input stream ends.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from flinkdl.config.base import section
from flinkdl.config.schema import JobConfig, WorkerConfig
from flinkdl.exchange.schema import PREDICTION_SCHEMA, FeatureLayout, prediction_labels
from flinkdl.exchange.worker_stream import PredictionStream
from flinkdl.feedback.esdfm_rows import job_layout, needs_weights
from flinkdl.worker.feed import FeatureStream
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook

if TYPE_CHECKING:
    from flinkdl.models.base import ModelBase


def intra_op_threads(cfg: WorkerConfig, model: type[ModelBase]) -> int:
    """TensorFlow threads per op: ``worker.intra_op_threads``, or when 0 the model class's own choice.

    >>> from flinkdl.models.lr import LogisticRegression as LR
    >>> intra_op_threads(WorkerConfig(), LR), intra_op_threads(WorkerConfig(intra_op_threads=2), LR)
    (1, 2)
    """
    return cfg.intra_op_threads or model.intra_op_threads


def _configure_tf(cfg: WorkerConfig, intra_op: int) -> Any:
    """TensorFlow with ``intra_op`` threads per op (0: its default), the worker's devices (returns ``tensorflow``)."""
    import tensorflow as tf

    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if cfg.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(cfg.inter_op_threads)
    if not cfg.device.startswith("GPU"):  # WorkerConfig normalises: CPU:0 or GPU:N
        tf.config.set_visible_devices([], "GPU")
    return tf


def build_hooks(cfg: JobConfig, model: ModelBase, buckets: int, subtask: int) -> list[StepHook]:
    """The hooks the config asks for, outermost first: TensorBoard (``tensorboard``), publishing (``publish``,
    subtask 0), PS sync (``ps``), an ensemble's variant metrics, then Prometheus (``metrics``).

    Loads the model from the parameter server (if enabled) and starts the ``/metrics`` endpoint.
    """
    hooks: list[StepHook] = []
    metrics = None
    if cfg.metrics.enabled:
        from flinkdl.telemetry.exporter import WorkerMetrics

        metrics = WorkerMetrics(cfg, subtask, with_ps=cfg.ps.enabled)
    if cfg.tensorboard.enabled:
        from flinkdl.worker.hooks.tensorboard import TensorBoardHook

        hooks.append(TensorBoardHook.from_config(cfg.tensorboard, cfg.job.run_dir, model, subtask))
    if cfg.publish.enabled and subtask == 0:  # listed before the PS hook: runs after its commit
        from flinkdl.worker.hooks.publish import PublishHook

        single = cfg.ps.single_writer if cfg.ps.single_writer is not None else cfg.job.parallelism == 1
        from flinkdl.publish.layout import FINAL_REPORT as PUBLISH_REPORT

        hooks.append(PublishHook.from_config(
            cfg.publish, cfg.features, model, ps=cfg.ps if cfg.ps.enabled else None, single_writer=single,
            endpoint=metrics.endpoint if metrics else None,
            report=os.path.join(cfg.job.run_dir, PUBLISH_REPORT.format(pid=os.getpid()))))
    if cfg.ps.enabled:  # start from the parameter server's state; push touched-row deltas as we go
        from flinkdl.parallel.worker import LoadOnlyPsHook, sync_steps
        from flinkdl.ps.local import FINAL_REPORT
        from flinkdl.worker.hooks.ps import PsHook
        from flinkdl.worker.ps_sync import writer_name

        hook: type[PsHook] = PsHook
        if cfg.model.name == "dynamic":  # rows by position plus each row's id
            from flinkdl.worker.hooks.ps_dynamic import DynamicPsHook as hook
        report = os.path.join(cfg.job.run_dir, FINAL_REPORT.format(pid=os.getpid()))
        sync = sync_steps(cfg)  # equal replicas: rank 0 writes as a single writer, the others only load
        if sync and subtask > 0:
            hooks.append(LoadOnlyPsHook(cfg.ps, model, buckets, report))
        else:
            lockstep = {"push_every_s": float("inf"), "single_writer": True,  # the other ranks round as it pushes
                        "single_writer_push_every_batches": cfg.ps.push_every_batches}
            ps = cfg.ps.model_copy(update=lockstep) if sync else cfg.ps
            hooks.append(hook.from_config(ps, model, buckets, exactly_once=cfg.job.exactly_once,
                                          parallelism=1 if sync else cfg.job.parallelism, report=report,
                                          metrics=metrics.ps if metrics is not None else None,
                                          writer=writer_name(cfg.ps, subtask)))
    from flinkdl.models.ensemble import Ensemble

    if isinstance(model, Ensemble):  # every variant's quality: Prometheus and the run's summary
        from flinkdl.worker.hooks.variants import VariantsHook

        hooks.append(VariantsHook(model, cfg.job.run_dir, subtask, metrics.endpoint if metrics else None,
                                  cfg.job.report_every_s))
    if needs_weights(cfg.feedback):  # es_dfm: the weight column → ES-DFM's loss weights
        from flinkdl.worker.hooks.esdfm import EsDfmHook

        hooks.append(EsDfmHook.after(hooks, FeatureLayout.from_config(cfg.features),
                                     section(cfg.feedback, "feedback").es_dfm, cfg.model.seed))
    if metrics is not None:
        from flinkdl.worker.hooks.prometheus import PrometheusHook

        metrics.endpoint.start()
        hooks.append(PrometheusHook(metrics))
    return hooks


def run_step(model: ModelBase, hooks: Sequence[StepHook], batch: Batch) -> Predictions:
    """One prequential step: hooks before (in order), score then train, hooks after (reversed)."""
    for hook in hooks:
        hook.before_step(batch)
    mask = batch.labelled if batch.train is None else batch.train
    weights = {} if batch.weight is None else {"weights": np.asarray(batch.weight)}
    scores = model.predict_then_train(batch.ids, batch.dense, batch.label, None if mask.all() else mask, **weights)
    pred = Predictions(scores, model.version, trained=int(mask.sum()))
    for hook in reversed(hooks):
        hook.after_step(batch, pred)
    return pred


def serve(cfg: JobConfig, in_endpoint: str, out_path: str) -> int:
    """Run the prequential loop until the input stream ends; returns batches processed."""
    from flinkdl.models.registry import build_model, resolve

    tf = _configure_tf(cfg.worker, intra_op_threads(cfg.worker, resolve(cfg.model.name)))

    layout = job_layout(cfg)  # weighted under feedback.strategy: es_dfm
    from flinkdl.models.xla_lr import for_job

    model = build_model(layout, for_job(cfg))  # model.xla_step auto: off where the job rules it out
    subtask = int(os.environ.get("FLINKDL_SUBTASK", "0"))
    hooks = build_hooks(cfg, model, layout.buckets, subtask)
    sync = None
    if cfg.parallel.sync_steps and cfg.job.parallelism > 1:  # all workers step together (flinkdl.parallel)
        from flinkdl.parallel.worker import SyncTraining

        sync = SyncTraining.from_config(cfg, model, hooks, subtask)
    with tf.device(cfg.worker.device):
        out = PredictionStream(out_path, PREDICTION_SCHEMA)
        steps = 0
        batches = FeatureStream(in_endpoint, layout)
        # Everything made so far (TensorFlow's modules, the model, the hooks) lives as long as the
        # process: out of the collector's reach, its full passes no longer walk that whole heap.
        gc.freeze()
        for batch in batches:
            pred = sync.step(batch) if sync is not None else run_step(model, hooks, batch)
            steps += 1
            out.write([batch.event_id.numpy(), pred.scores.numpy(), prediction_labels(batch.label.numpy()),
                       np.full(batch.rows, pred.model_version, np.int64)], pred.ps_version)
        batches.close()
        if sync is not None:
            sync.finish()
        for hook in reversed(hooks):
            hook.close()
        out.close()
    return steps


def exit_with_parent(poll_s: float = 0.5) -> None:
    """Exit at once when the Flink Python process that started us dies (kill -9 of the harness).

    Its sockets close without an end-of-stream, on which the Arrow reader would wait for ever;
    and an orphan must not push to the PS after Flink restored the task (docs/EXACTLY_ONCE.md).
    The supervisor names itself in ``FLINKDL_WORKER_PARENT``: a worker whose parent died while it
    was still importing (a cancel racing a restart) is an orphan from its first line, and exits too.
    """
    parent = int(os.environ.get("FLINKDL_WORKER_PARENT") or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def log_info_to_stderr() -> None:
    """flinkdl's INFO lines (e.g. which step ``model.xla_step`` took, the rows loaded from the PS) to stderr:
    the run directory's ``worker-N.log``."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("flinkdl")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m flinkdl.worker CONFIG_JSON|- IN_ENDPOINT OUT_PATH  (-: the config on stdin)",
              file=sys.stderr)
        return 2
    exit_with_parent()
    # Ctrl-C reaches the terminal's whole process group: the CLI cancels the job, and this worker ends with its
    # stream or its parent; dying first would make the operator restart it and fail mid-cancel.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cfg = JobConfig.model_validate_json(sys.stdin.read() if argv[0] == "-" else argv[0])
    log_info_to_stderr()
    serve(cfg, argv[1], argv[2])
    return 0
