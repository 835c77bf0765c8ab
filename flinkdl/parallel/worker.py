"""The worker side of ``parallel.sync_steps``: its step, and the PS link of the ranks that do not write.

All replicas are equal, so rank 0 alone writes to the parameter server, as a single writer (it pushes
every row any rank's gradients changed, every ``ps.push_every_batches`` batches: never by time, so
that every rank knows when); the other ranks only load the server's state on start, and at each of
rank 0's pushes round their dense state as the push rounds rank 0's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np

from flinkdl.config.parallel import ParallelConfig
from flinkdl.config.schema import JobConfig, PsConfig
from flinkdl.models.base import ModelBase
from flinkdl.models.tensors import to_tensor
from flinkdl.parallel.ps_exchange import PsExchange
from flinkdl.parallel.sync_step import SyncStepper
from flinkdl.ps.client import PsClient
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook
from flinkdl.worker.hooks.ps import PsHook
from flinkdl.worker.ps_sync import PsSync


def sync_steps(cfg: JobConfig) -> bool:
    """Whether this job trains in synchronous steps."""
    return cfg.parallel.sync_steps and cfg.job.parallelism > 1


def join(client: PsClient, base_key: str, rank: int, world: int, timeout_s: float) -> PsExchange:
    """Every rank hands in a random nonce under ``base_key``; the rounds then go under a key made of all of
    them, which a restarted attempt (new nonces) never shares with an old one."""
    nonces = client.allreduce(base_key, 0, rank, world, os.urandom(16), timeout_s)
    key = f"{base_key}/{hashlib.sha256(b''.join(nonces)).hexdigest()[:16]}"
    return PsExchange(client, key, rank, world, timeout_s)


class LoadOnlyPsHook(StepHook):
    """A rank other than 0: loads the model from the server on start, never writes."""

    def __init__(self, cfg: PsConfig, model: ModelBase, buckets: int, report: str | None = None) -> None:
        self.sync, self.report = PsSync(model, cfg, buckets, single_writer=True), report

    def before_step(self, batch: Batch) -> None:
        pass

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        pass

    def close(self) -> None:
        self.sync.client.close()
        if self.report:
            tmp = f"{self.report}.tmp"
            with open(tmp, "w") as f:
                json.dump({"committed": None, "pushes": 0, "batches": 0}, f)
            os.replace(tmp, self.report)


class SyncTraining:
    """Replaces :func:`flinkdl.worker.process.run_step` at ``parallel.sync_steps``."""

    def __init__(self, cfg: ParallelConfig, ps: PsConfig, model: ModelBase, hooks: Sequence[StepHook], rank: int,
                 world: int, micro_batch_rows: int | None, run_key: str, join_timeout_s: float | None = None,
                 announce: bool = False) -> None:
        """``join_timeout_s``: how long the join at start waits for the other ranks (default ``cfg.timeout_s``;
        a restarted worker waits for the others to time out of their step and restart too). ``announce``
        (exactly-once): at every push rank 0 hands the version it committed to every rank, whose step then
        reports it too (the trainers' anchors, :mod:`flinkdl.parallel.restore`)."""
        self.model, self.hooks, self.announce = model, hooks, announce
        self.client = PsClient.from_config(ps)
        exchange = join(self.client, f"{ps.table_prefix}{run_key}", rank, world, join_timeout_s or cfg.timeout_s)
        exchange.timeout_s = cfg.timeout_s
        micro = -(-micro_batch_rows // world) if micro_batch_rows else None  # this rank's share of a step
        self.stepper = SyncStepper(model, exchange, micro)
        writers = [h.sync for h in hooks if isinstance(h, PsHook)]
        self.writer: PsSync | None = writers[0] if writers else None
        # the writer's push rounds its dense state (base + (value - base), float32): the others do the same
        self.push_every, self.rounds = ps.push_every_batches, 0
        mirror = {n: v for n, v in model.variables().items() if n not in model.sparse_names()}
        mirror.update(model.dense_optimizer_state())
        self._mirror = mirror if self.writer is None else {}
        self._base = {n: v.numpy() for n, v in self._mirror.items()}

    @classmethod
    def from_config(cls, cfg: JobConfig, model: ModelBase, hooks: Sequence[StepHook], rank: int) -> SyncTraining:
        """A synchronous step covers ``model.micro_batch_rows`` rows over all ranks, or one source batch (as one
        step at parallelism 1 would)."""
        step_rows = cfg.model.micro_batch_rows or cfg.source.generator.batch_size
        return cls(cfg.parallel, cfg.ps, model, hooks, rank, cfg.job.parallelism, step_rows, str(cfg.job.run_dir),
                   join_timeout_s=cfg.worker.start_timeout_s / 2,  # within the supervisor's wait for the start
                   announce=cfg.job.exactly_once)

    def _mark(self) -> None:
        """Rank 0 pushes every row the summed gradients changed, whoever's batch held it."""
        touched = self.stepper.take_touched()
        if self.writer is not None and len(touched):
            self.writer.before_step(touched)

    def step(self, batch: Batch) -> Predictions:
        """Hooks before, score then learn in synchronous steps (unlabelled rows: only scored), hooks after."""
        if batch.weight is not None:
            raise ValueError("parallel.sync_steps: per-row loss weights (a weighted feature batch) are not supported")
        for hook in self.hooks:
            hook.before_step(batch)
        ids, dense, label = batch.ids.numpy(), batch.dense.numpy(), batch.label.numpy()
        mask = batch.labelled
        if mask.all():
            scores = self.stepper.train_batch(ids, dense, label)
        else:
            scores = np.zeros(len(mask), np.float32)
            if (~mask).any():
                scores[~mask] = self.model.predict(to_tensor(ids[~mask]), to_tensor(dense[~mask])).numpy()
            scores[mask] = self.stepper.train_batch(ids[mask], dense[mask], label[mask])
        self._mark()
        pred = Predictions(to_tensor(scores), self.stepper.batches, trained=int(mask.sum()))
        for hook in reversed(self.hooks):
            hook.after_step(batch, pred)
        self.rounds += 1
        if self.rounds % self.push_every == 0:
            self._round_as_pushed()
            if self.announce:
                pred.ps_version = self._announce(pred.ps_version)
        return pred

    def _announce(self, committed: int | None) -> int | None:
        """One more exchange: rank 0's committed version (``None``: none), the same on every rank."""
        out = self.stepper.ex.exchange(json.dumps({"v": committed}).encode())
        return json.loads(out[0])["v"]

    def _round_as_pushed(self) -> None:
        """What rank 0's push does to its dense variables (PsSync.sync, single writer), so replicas stay equal."""
        for n, var in self._mirror.items():
            value = (self._base[n] + (var.numpy() - self._base[n])).astype(np.float32)
            var.assign(value)
            self._base[n] = value

    def finish(self) -> None:
        """End of this rank's input: keep stepping with the others until all ended (before the hooks close)."""
        self.stepper.drain()
        self._mark()
        self._round_as_pushed()  # as rank 0's final push (PsSync.close) will
        self.client.close()
