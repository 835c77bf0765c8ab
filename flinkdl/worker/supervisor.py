"""Start, feed, watch and restart the co-located TF worker of one Flink subtask.

The supervisor lives inside the Flink Python operator. ``start()`` launches
``python -m flinkdl.worker`` and waits for it to connect; ``process(payload)`` sends one packed
feature batch and blocks for its predictions (so when the operator returns, the model has
trained on that batch: the property exactly-once mode builds on). If the worker dies, it is
restarted (up to ``worker.max_restarts`` times in a row) by ``on_restart`` if given (exactly-once
mode: roll the PS back to the operator's anchor, start, replay the tail) or a plain ``start()``,
and the unanswered batch is resent, so no row is dropped or duplicated; past that the error fails
the Flink task and Flink's restart strategy takes over. The first start takes over a warm worker
(:mod:`flinkdl.worker.warm`, already past ``import tensorflow``) when ``flinkdl run`` made one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import ArrowChannel, ExchangeClosed
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.exchange.worker_stream import read_ps_version
from flinkdl.feedback.esdfm_rows import job_layout
from flinkdl.worker.warm import Adopted, claim

log = logging.getLogger(__name__)


class WorkerFailed(RuntimeError):
    """The worker died more often than ``worker.max_restarts`` allows."""


_cancelled = threading.Event()


def cancel_all() -> None:
    """This process's job is being cancelled (``flinkdl run`` on Ctrl-C, its operators in this process):
    no worker starts any more, so none is restarted under a teardown that stops the PS and workers."""
    _cancelled.set()


class WorkerSupervisor:
    """The worker of subtask ``subtask``; its log goes to ``log_dir`` (default: ``job.run_dir``)."""

    def __init__(self, cfg: JobConfig, subtask: int = 0, log_dir: Path | None = None) -> None:
        # the whole config travels to the worker process (model, features, ps, metrics, job);
        # the supervisor itself reads only the ``worker`` section and the feature schema
        self.worker_cfg = cfg.worker
        self._config_json = cfg.model_dump_json()
        self._run_dir = cfg.job.run_dir
        self.subtask = subtask
        self.schema = job_layout(cfg).schema()  # weighted under feedback.strategy: es_dfm
        self.log_path = (log_dir or cfg.job.run_dir) / f"worker-{subtask}.log"
        self.restarts = 0
        self._proc: subprocess.Popen | Adopted | None = None
        self._channel: ArrowChannel | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if _cancelled.is_set():
            raise WorkerFailed(f"worker {self.subtask}: not started, the job is being cancelled")
        self._channel = ArrowChannel(self.schema, PREDICTION_SCHEMA, self.worker_cfg.socket_dir,
                                     receive_timeout_s=self.worker_cfg.step_timeout_s)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.restarts == 0:  # a warm worker (flinkdl.worker.warm) for the first start, if there is one
            self._proc = claim(self.subtask, self._config_json, self._channel.in_endpoint, self._channel.out_path,
                               str(self._run_dir))
        if self._proc is None:
            self._spawn()
        try:
            self._channel.accept(self.worker_cfg.start_timeout_s, alive=self.alive)
        except ExchangeClosed as e:
            raise WorkerFailed(f"worker {self.subtask} failed to start ({e}); see {self.log_path}") from e
        assert self._proc is not None
        log.info("worker %d started, pid %d", self.subtask, self._proc.pid)

    def _spawn(self) -> None:
        assert self._channel is not None
        with open(self.log_path, "ab") as err:
            # The config goes through stdin: it may hold secrets (ps.token), and a command line is
            # visible to every user of the host.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "flinkdl.worker", "-", self._channel.in_endpoint, self._channel.out_path],
                stdin=subprocess.PIPE, stdout=err, stderr=err,
                env={**os.environ, "FLINKDL_SUBTASK": str(self.subtask), "FLINKDL_RUN_DIR": str(self._run_dir),
                     "FLINKDL_WORKER_PARENT": str(os.getpid())})
            assert self._proc.stdin is not None
            self._proc.stdin.write(self._config_json.encode())
            self._proc.stdin.close()

    def process(self, payload: bytes, rows: int, on_restart: Callable[[], None] | None = None,
                meanwhile: Callable[[], None] | None = None) -> tuple[pa.RecordBatch, int | None]:
        """Train on one packed feature batch of ``rows`` rows.

        Returns its predictions and the PS version the step committed (``None``: no commit; else
        that version includes this batch). After a worker death, ``on_restart`` (default:
        :meth:`start`) starts the new one. ``meanwhile`` is called once, after the batch is sent
        and before its predictions are read: work that overlaps the worker's step.
        """
        consecutive = 0
        while True:
            if self._channel is None:
                raise WorkerFailed(f"worker {self.subtask} is not started")
            try:
                self._channel.send_payload(payload)
                if meanwhile is not None:
                    meanwhile()
                    meanwhile = None  # once: not again when the batch is resent to a restarted worker
                out, meta = self._channel.receive_with_metadata()
                if out.num_rows != rows:
                    raise WorkerFailed(f"worker {self.subtask} answered {out.num_rows} rows for {rows}")
                return out, read_ps_version(meta)
            except ExchangeClosed as e:
                consecutive += 1
                self.restarts += 1
                if consecutive > self.worker_cfg.max_restarts:
                    raise WorkerFailed(f"worker {self.subtask} died {consecutive} times in a row: {e}; "
                                       f"see {self.log_path}") from e
                log.warning("worker %d died (%s); restarting (%d)", self.subtask, e, self.restarts)
                self.kill()
                (on_restart or self.start)()

    def stop(self, timeout: float = 30.0) -> None:
        """Close the stream (the worker exits after its last batch) and reap the process."""
        if self._channel is not None:
            self._channel.finish()
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._channel is not None:
            self._channel.close()
        self._proc = self._channel = None

    def kill(self) -> None:
        """SIGKILL the worker (if running) and drop its sockets; :meth:`start` makes a new one."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._channel is not None:
            self._channel.close()
        self._proc = self._channel = None
