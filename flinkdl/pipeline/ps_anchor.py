"""The trainer's exactly-once anchor (docs/EXACTLY_ONCE.md): a committed parameter-server version
``{"ps_version": V}`` at parallelism 1; at parallelism > 1 a segment of the subtask's writer lane,
``{"writer": W, "seq": S}`` (:mod:`flinkdl.ps.lanes`)."""

from __future__ import annotations

from collections.abc import Callable

from flinkdl.config.schema import PsConfig
from flinkdl.ps.client import PsClient
from flinkdl.ps.errors import PsError


def reset_to_version(ps_cfg: PsConfig, anchor: dict | None, start_worker: Callable[[], None],
                     writer: str | None = None, lanes: bool = False) -> dict:
    """Roll the PS back to ``anchor``'s version (``None``: keep what it holds), then start the
    worker, which loads it; returns the anchor of the state now (a new commit on a fresh start).
    ``writer``: fence that name first, so a worker of an earlier attempt can write nothing more.
    ``lanes``: the anchor is a segment of ``writer``'s lane; only that lane is rolled back."""
    with PsClient.from_config(ps_cfg) as ps:
        if not ps.health()["checkpoint"]:
            raise PsError(f"job.exactly_once needs a PS with --checkpoint-dir; {ps.address} has none")
        if lanes:
            return _reset_lane(ps, anchor, start_worker, writer)
        if writer is not None:
            ps.fence(writer)
        if anchor is not None:
            ps.rollback(anchor["ps_version"])
        else:  # before the worker starts: its fence makes this client's writes stale
            anchor = {"ps_version": int(ps.commit()["version"])}
            ps.end_lanes()  # a single writer's anchors are versions: writer lanes (parallelism > 1) end here
        start_worker()
        return anchor


def _reset_lane(ps: PsClient, anchor: dict | None, start_worker: Callable[[], None], writer: str | None) -> dict:
    """Roll back the anchor's writer lane (the writer named in it: the same subtask's), or on a
    fresh start seal what that lane holds as its anchor segment; then start the worker."""
    name = anchor["writer"] if anchor is not None else writer
    if name is None:
        raise PsError("an exactly-once trainer at parallelism > 1 needs its writer name")
    ps.fence(name)
    if anchor is not None:
        ps.lane_rollback(int(anchor["seq"]))
    else:
        anchor = {"writer": name, "seq": ps.lane_commit()}
    start_worker()
    return anchor
