"""The TensorFlow worker process: Arrow stream in, prequential learning, predictions out.

Started by :class:`flinkdl.worker.supervisor.WorkerSupervisor` as
``python -m flinkdl.worker CONFIG_JSON IN_ENDPOINT OUT_PATH``. It reads feature batches with
``tensorflow_io.arrow.ArrowStreamDataset`` (one Arrow RecordBatch = one step), and for each batch
scores it with the current model, trains on it (one ``predict_then_train`` step, so every score
was made before the model saw that event), and writes the scores back as an Arrow IPC stream.
When a batch's step committed a parameter-server version, that batch's scores carry it in their
IPC custom metadata (``ps_version``): the version includes that batch and every one before it,
which is what the exactly-once protocol of the Flink operator builds on (docs/EXACTLY_ONCE.md).
It exits when the input stream ends.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pyarrow as pa

from flinkdl.config.schema import JobConfig, WorkerConfig
from flinkdl.exchange.schema import PREDICTION_SCHEMA, FeatureLayout

#: IPC custom-metadata key of a prediction batch whose step committed a PS version.
PS_VERSION_KEY = "ps_version"


def _configure_tf(cfg: WorkerConfig):
    import tensorflow as tf

    if cfg.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.intra_op_threads)
    if cfg.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(cfg.inter_op_threads)
    if not cfg.device.lower().startswith("gpu"):
        tf.config.set_visible_devices([], "GPU")
    return tf


def feature_dataset(tf, layout: FeatureLayout, endpoint: str):
    """``ArrowStreamDataset`` over ``endpoint`` → (event_id, label, ids[B,F], dense[B,D]) per batch."""
    from tensorflow_io.arrow import ArrowStreamDataset

    schema = layout.schema()
    types = tuple(tf.int64 if f.type == pa.int64() else tf.float32 for f in schema)
    ds = ArrowStreamDataset([endpoint], columns=tuple(range(len(schema))), output_types=types,
                            batch_mode="auto")
    n_ids = layout.n_ids

    def assemble(*cols):
        event_id, label = cols[0], cols[1]
        ids = tf.stack(cols[2:2 + n_ids], axis=1)
        dense_cols = cols[2 + n_ids:]
        dense = tf.stack(dense_cols, axis=1) if dense_cols else tf.zeros([tf.shape(label)[0], 0])
        return event_id, label, ids, dense

    return ds.map(assemble)


def serve(cfg: JobConfig, in_endpoint: str, out_path: str) -> int:
    """Run the prequential loop until the input stream ends; returns batches processed."""
    tf = _configure_tf(cfg.worker)
    from flinkdl.models.registry import build_model

    layout = FeatureLayout.from_config(cfg.features)
    model = build_model(layout, cfg.model)
    ps = None
    if cfg.ps.enabled:  # start from the parameter server's state; push touched-row deltas as we go
        from flinkdl.ps.sync import PsSync

        single = cfg.ps.single_writer if cfg.ps.single_writer is not None else cfg.job.parallelism == 1
        ps = PsSync(model, cfg.ps, layout.buckets, commit_every_push=cfg.job.exactly_once, single_writer=single)
    metrics = None
    if cfg.metrics.enabled:  # /metrics of this worker (subtask from the supervisor's environment)
        from flinkdl.telemetry.exporter import WorkerMetrics

        metrics = WorkerMetrics(cfg, int(os.environ.get("FLINKDL_SUBTASK", "0")), with_ps=ps is not None)
        metrics.endpoint.start()
    with tf.device(cfg.worker.device):
        out = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        out.connect(out_path)
        sink = out.makefile("wb")
        writer = pa.ipc.new_stream(sink, PREDICTION_SCHEMA)
        sink.flush()
        steps = 0
        for event_id, label, ids, dense in feature_dataset(tf, layout, in_endpoint):
            t0 = time.perf_counter()
            if ps is not None:
                ps.before_step(ids.numpy())
                if metrics is not None:
                    metrics.ps.pull_seconds.observe(time.perf_counter() - t0)
                t0 = time.perf_counter()
            scores = model.predict_then_train(ids, dense, label)
            n = len(label)
            if metrics is not None:
                metrics.step(time.perf_counter() - t0, n, model.version)
            steps += 1
            committed = None
            if ps is not None:  # before the scores go back, so they can say which version has this batch
                t1, before = time.perf_counter(), ps.committed
                synced = ps.after_step()
                if metrics is not None:
                    metrics.ps.after_step(synced, time.perf_counter() - t1, ps)
                committed = ps.committed if ps.committed != before else None
            writer.write_batch(pa.record_batch(
                [event_id.numpy(), scores.numpy(), label.numpy(), np.full(n, model.version, np.int64)],
                schema=PREDICTION_SCHEMA),
                custom_metadata=None if committed is None else {PS_VERSION_KEY: str(committed)})
            sink.flush()
        if ps is not None:  # last push and a committed version; the report tells the runner
            from flinkdl.ps.local import FINAL_REPORT

            ps.close(report=os.path.join(cfg.job.run_dir, FINAL_REPORT.format(pid=os.getpid())))
        writer.close()
        sink.close()
        out.close()
    return steps


def exit_with_parent(poll_s: float = 0.5) -> None:
    """Exit at once when the Flink Python process that started us dies (kill -9 of the harness).

    Its sockets close without an end-of-stream, on which the Arrow reader would wait for ever;
    and an orphan must not push to the PS after Flink restored the task (docs/EXACTLY_ONCE.md).
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m flinkdl.worker CONFIG_JSON|- IN_ENDPOINT OUT_PATH  (-: the config on stdin)",
              file=sys.stderr)
        return 2
    exit_with_parent()
    cfg = JobConfig.model_validate_json(sys.stdin.read() if argv[0] == "-" else argv[0])
    serve(cfg, argv[1], argv[2])
    return 0
