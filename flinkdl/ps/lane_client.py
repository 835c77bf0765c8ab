"""The parameter-server client's writer-lane calls (:mod:`flinkdl.ps.lanes`), mixed into
:class:`~flinkdl.ps.client.PsClient`."""

from __future__ import annotations

from typing import Any

from flinkdl.ps.errors import PsError


class LaneCalls:
    """Writer commit and rollback on every shard, cuts; needs the client's ``_json`` and connections."""

    writer: str | None
    _lane: int | None
    _clients: list

    def _json(self, kind: str, body: dict | None = None, conn: int = 0) -> Any:
        raise NotImplementedError

    def _lane_writer(self) -> str:
        if self.writer is None:
            raise PsError("writer lanes need a fenced writer: call fence(writer) first")
        return self.writer

    def lane_seq(self) -> int:
        """The fenced writer's last committed lane segment (the highest of any shard; 0: none)."""
        w = self._lane_writer()
        return max(int(self._json("lane_info", {"writer": w}, k)["seq"] or 0) for k in range(len(self._clients)))

    def lane_commit(self) -> int:
        """Seal the fenced writer's pushes since its last segment as the next segment, on every shard
        (each shard its part); returns its number. A writer's anchor names a segment only once every
        shard has it, and a rollback to that anchor drops any later one: no two-phase commit needed."""
        w = self._lane_writer()
        if self._lane is None:
            self._lane = self.lane_seq()
        seq = self._lane + 1
        for k in range(len(self._clients)):
            self._json("lane_commit", {"writer": w, "seq": seq}, k)
        self._lane = seq
        return seq

    def lane_rollback(self, seq: int) -> dict:
        """Take the fenced writer's deltas after its segment ``seq`` back out, on every shard."""
        w = self._lane_writer()
        out = [self._json("lane_rollback", {"writer": w, "seq": int(seq)}, k) for k in range(len(self._clients))]
        self._lane = int(seq)
        return out[0]

    def end_lanes(self) -> None:
        """Forget every writer lane on every shard (the live state stays; see :mod:`flinkdl.ps.lanes`)."""
        for k in range(len(self._clients)):
            self._json("end_lanes", {}, k)

    def record_cut(self, cut_id: int, cut: dict[str, int]) -> dict:
        """Record ``{writer: seq}`` as the model of cut ``cut_id`` (on shard 0)."""
        return self._json("record_cut", {"id": int(cut_id), "cut": cut})

    def lane_compact(self, keep: int) -> dict:
        """Keep the newest ``keep`` recorded cuts; on every shard fold each writer's segments that all
        of them have passed into one (:mod:`flinkdl.ps.lane_compact`). Returns shard 0's answer."""
        from flinkdl.ps.lane_compact import floors

        low, oldest = floors(self.cuts(), keep)
        if oldest is None:
            return {}
        out = [self._json("lane_compact", {"floors": low, "drop_cuts_below": oldest if k == 0 else None}, k)
               for k in range(len(self._clients))]
        return out[0]

    def cuts(self) -> list[dict]:
        """Recorded cuts, oldest first: ``{"id", "cut": {writer: seq}}``."""
        return self._json("cuts")
