"""The trainer's exactly-once anchor: a committed parameter-server version (docs/EXACTLY_ONCE.md)."""

from __future__ import annotations

from collections.abc import Callable

from flinkdl.config.schema import PsConfig
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError


def reset_to_version(ps_cfg: PsConfig, anchor: dict | None, start_worker: Callable[[], None]) -> dict:
    """Roll the PS back to ``anchor``'s version (``None``: keep what it holds), then start the
    worker, which loads it; returns the anchor of the state now (a new commit on a fresh start)."""
    with PsClient.from_config(ps_cfg) as ps:
        if not ps.health()["checkpoint"]:
            raise PsError(f"job.exactly_once needs a PS with --checkpoint-dir; {ps.address} has none")
        if anchor is not None:
            ps.rollback(anchor["ps_version"])
        start_worker()
        return anchor or {"ps_version": int(ps.commit()["version"])}
