"""Exactly-once restore of synchronous steps: every rank restarts from one PS version, at one batch.

With ``parallel.sync_steps`` rank 0 alone writes the model: it commits a PS version every
``ps.push_every_batches`` batches, and every rank learns that version in the same step
(:meth:`flinkdl.parallel.worker.SyncTraining.step`), so each trainer's anchor is
``{"ps_version": V, "batch": n}``: version ``V`` holds batches ``< n`` of every rank. The ranks take a
checkpoint barrier at different batches, so their anchors may differ by a commit. On a restore (Flink's,
or a worker's death in place) every trainer hands its anchor to one rendezvous round; the earliest is the
common restart point ``(n*, V*)``: rank 0 rolls the PS back to ``V*`` (a fresh start: commits what the PS
holds), and only then, after a second round, every rank starts its worker, which loads ``V*``. Rank ``k``
re-trains, without emitting, batches ``n* .. n_k - 1`` (regenerated from their index: the generator is a
pure function of it) and then its tail, so all ranks step through the same batches from ``n*`` on. See
docs/EXACTLY_ONCE.md ("Synchronous steps with exactly-once").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from flinkdl.config.schema import PsConfig
from flinkdl.ps.errors import PsError

log = logging.getLogger(__name__)


class RestoreClient(Protocol):
    """What the restore needs of a :class:`~flinkdl.ps.client.PsClient`."""

    def allreduce(self, key: str, round_no: int, rank: int, world: int, blob: bytes,
                  timeout_s: float) -> list[bytes]: ...

    def fence(self, writer: str) -> int: ...

    def rollback(self, version: int) -> dict: ...

    def commit(self) -> dict: ...

    def end_lanes(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """The common restart point: the first batch to train again and the version holding every batch before it
    (``None``: no rank has a version there, a fresh start)."""

    batch: int
    version: int | None


def pick(anchors: Sequence[dict]) -> Target:
    """The earliest of the ranks' anchors (``{"batch": n}`` alone: a rank that starts fresh at batch ``n``)."""
    if not anchors:
        raise PsError("no anchors to restore from")
    batch = min(int(a["batch"]) for a in anchors)
    versions = {int(a["ps_version"]) for a in anchors if int(a["batch"]) == batch and "ps_version" in a}
    if len(versions) > 1:
        raise PsError(f"ranks name different versions {sorted(versions)} for batch {batch}")
    if not versions and any("ps_version" in a for a in anchors):
        raise PsError(f"a rank starts fresh at batch {batch}, before every other rank's anchor: {list(anchors)}")
    return Target(batch, versions.pop() if versions else None)


def catch_up(own: dict, target: Target) -> range:
    """The batches this rank must re-train before its tail: from the target to its own anchor."""
    return range(target.batch, max(int(own["batch"]), target.batch))


def agree(client: RestoreClient, key: str, rank: int, world: int, own: dict, writer: str,
          timeout_s: float) -> dict:
    """Hand ``own`` anchor in, agree on the target, and (rank 0) put the PS there; every rank returns the
    anchor of the state its worker will load: ``{"ps_version": V*, "batch": n*}``.

    ``key`` names this restore of this attempt (round 0: anchors, round 1: rank 0's result). Rank 0 fences
    ``writer`` first, so a worker of an earlier attempt can write nothing more."""
    if rank == 0:
        client.fence(writer)
    anchors = [json.loads(b) for b in client.allreduce(key, 0, rank, world, json.dumps(own).encode(), timeout_s)]
    target = pick(anchors)
    blob = b"{}"
    if rank == 0:
        if target.version is None:
            version = int(client.commit()["version"])
            client.end_lanes()  # the single writer's anchors are versions
        else:
            client.rollback(target.version)
            version = target.version
        blob = json.dumps({"ps_version": version, "batch": target.batch}).encode()
    out = json.loads(client.allreduce(key, 1, rank, world, blob, timeout_s)[0])
    return {"ps_version": int(out["ps_version"]), "batch": int(out["batch"])}


def restore_key(table_prefix: str, run_dir: str, attempt: int, resets: int) -> str:
    """The rendezvous key of one restore: the job, the Flink attempt and the trainer's resets within it (every
    rank resets once per failure), so a restore never meets an earlier attempt's or restore's contributions."""
    return f"{table_prefix}{run_dir}/restore/a{attempt}/r{resets}"


def reset_sync(ps_cfg: PsConfig, key: str, rank: int, world: int, own: dict, timeout_s: float,
               start_worker: Callable[[], None]) -> dict:
    """:func:`agree` on a client of ``ps_cfg``, then start this rank's worker (it loads the agreed version)."""
    from flinkdl.ps.client import PsClient
    from flinkdl.worker.ps_sync import writer_name

    with PsClient.from_config(ps_cfg) as ps:
        if not ps.health()["checkpoint"]:
            raise PsError(f"job.exactly_once needs a PS with --checkpoint-dir; {ps.address} has none")
        target = agree(ps, key, rank, world, own, writer_name(ps_cfg, 0), timeout_s)
    log.info("rank %d restore %s: own anchor %s, every rank restarts at %s", rank, key, own, target)
    start_worker()
    return target
