"""The gradient exchange of synchronous steps through the parameter server's rendezvous (shard 0)."""

from __future__ import annotations

from flinkdl.parallel.sync_step import Exchange
from flinkdl.ps.client import PsClient


class PsExchange(Exchange):
    """Rank ``rank`` of ``world`` under ``key`` (one key per attempt of a job: rounds restart at 0 under it)."""

    def __init__(self, client: PsClient, key: str, rank: int, world: int, timeout_s: float) -> None:
        self.client, self.key, self.rank, self.world, self.timeout_s = client, key, rank, world, timeout_s
        self.round = 0

    def exchange(self, blob: bytes) -> list[bytes]:
        out = self.client.allreduce(self.key, self.round, self.rank, self.world, blob, self.timeout_s)
        self.round += 1
        return out
