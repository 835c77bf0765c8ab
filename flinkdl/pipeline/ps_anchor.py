"""The trainer's exactly-once anchor: a committed parameter-server version (docs/EXACTLY_ONCE.md)."""

from __future__ import annotations

from collections.abc import Callable

from flinkdl.config.schema import PsConfig
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError


def reset_to_version(ps_cfg: PsConfig, anchor: dict | None, start_worker: Callable[[], None],
                     writer: str | None = None) -> dict:
    """Roll the PS back to ``anchor``'s version (``None``: keep what it holds), then start the
    worker, which loads it; returns the anchor of the state now (a new commit on a fresh start).
    ``writer``: fence that name first, so a worker of an earlier attempt can write nothing more."""
    with PsClient.from_config(ps_cfg) as ps:
        if not ps.health()["checkpoint"]:
            raise PsError(f"job.exactly_once needs a PS with --checkpoint-dir; {ps.address} has none")
        if writer is not None:
            ps.fence(writer)
        if anchor is not None:
            ps.rollback(anchor["ps_version"])
        else:  # before the worker starts: its fence makes this client's writes stale
            anchor = {"ps_version": int(ps.commit()["version"])}
        start_worker()
        return anchor
