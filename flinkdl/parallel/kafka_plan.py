"""The take plan of ``parallel.sync_steps`` on Kafka: which messages batch ``g`` is, by offset, never by timing.

A rank's round must not depend on when the consumer's polls return (the asynchronous reader takes what
was fetched). So the topic is read as a sequence of *takes*: take ``g`` is ``per_take`` consecutive
messages of partition ``partitions[g % P]``, from offset ``base + (g // P) * per_take`` (``base``: the
partition's first offset when the job started). Take ``g`` is the generator's batch index ``g``: it goes
to rank ``g % p`` (rank ``k``'s ``n``-th batch is take ``n * p + k``, :mod:`flinkdl.parallel.deal`), a
rank waits until its take is complete, and a replay reads the same offsets again (Kafka keeps them), as
the generator makes a batch again from its index. See docs/EXACTLY_ONCE.md ("Synchronous steps on Kafka").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Take:
    """Messages ``[start, stop)`` of ``partition``."""

    partition: int
    start: int
    stop: int


class TakePlan:
    """Take index → :class:`Take` over the topic's partitions (in ``partitions`` order)."""

    def __init__(self, partitions: Sequence[int], base: Mapping[int, int], per_take: int) -> None:
        if not partitions:
            raise ValueError("a take plan needs at least one partition")
        if per_take < 1:
            raise ValueError(f"per_take must be >= 1, got {per_take}")
        missing = [p for p in partitions if p not in base]
        if missing:
            raise ValueError(f"no base offset for partitions {missing}")
        self.partitions, self.base, self.per_take = list(partitions), dict(base), per_take

    def take(self, index: int) -> Take:
        """Take ``index`` (>= 0)."""
        if index < 0:
            raise ValueError(f"take index must be >= 0, got {index}")
        part = self.partitions[index % len(self.partitions)]
        start = self.base[part] + (index // len(self.partitions)) * self.per_take
        return Take(part, start, start + self.per_take)

    def index(self, partition: int, offset: int) -> int:
        """The take that holds message ``offset`` of ``partition`` (the inverse of :meth:`take`)."""
        slot = self.partitions.index(partition)
        if offset < self.base[partition]:
            raise ValueError(f"offset {offset} of partition {partition} is before its base {self.base[partition]}")
        return (offset - self.base[partition]) // self.per_take * len(self.partitions) + slot

    def rank_partitions(self, rank: int, world: int) -> list[int]:
        """The partitions whose takes go to ``rank`` of ``world`` (all of them when P is not a multiple of p:
        then every rank reads every partition and skips the other ranks' messages)."""
        n = len(self.partitions)
        if n % world:
            return list(self.partitions)
        return [self.partitions[s] for s in range(n) if s % world == rank % world]
