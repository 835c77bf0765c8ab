"""A rendezvous: each of ``world`` ranks hands in one blob per round and gets every rank's blob back.

The blobs come back in rank order, so every rank reduces them in the same order and all replicas
stay equal. Rounds live under a *key* that names one attempt of one job: a restarted attempt uses
a new key and never meets an old attempt's contributions. A rank that waits longer than the
timeout gets an error naming the ranks that did not come.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flinkdl.ps.errors import PsError


@dataclass
class _Round:
    world: int
    blobs: dict[int, bytes] = field(default_factory=dict)
    taken: set[int] = field(default_factory=set)


class Rendezvous:
    """Thread-safe gather of one blob per rank and round; completed rounds are dropped once all took them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rounds: dict[tuple[str, int], _Round] = {}

    def gather(self, key: str, round_no: int, rank: int, world: int, blob: bytes, timeout_s: float) -> list[bytes]:
        """Hand in ``blob`` as ``rank`` of ``world`` for round ``round_no`` of ``key``; all blobs, in rank order."""
        if not 0 <= rank < world:
            raise PsError(f"allreduce: rank {rank} outside a world of {world}")
        deadline = time.monotonic() + timeout_s
        with self._cond:
            r = self._rounds.setdefault((key, round_no), _Round(world))
            if r.world != world:
                raise PsError(f"allreduce {key!r} round {round_no}: world {world} but {r.world} before")
            if rank in r.blobs:
                raise PsError(f"allreduce {key!r} round {round_no}: rank {rank} contributed twice (a stale attempt "
                              "under the same key?)")
            r.blobs[rank] = blob
            self._cond.notify_all()
            while len(r.blobs) < world:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(range(world)) - set(r.blobs))
                    del r.blobs[rank]
                    if not r.blobs:
                        self._rounds.pop((key, round_no), None)
                    raise PsError(f"allreduce {key!r} round {round_no}: ranks {missing} of {world} did not come "
                                  f"within {timeout_s:g} s")
                self._cond.wait(left)
            r.taken.add(rank)
            if len(r.taken) == world:
                self._rounds.pop((key, round_no), None)
            return [r.blobs[k] for k in range(world)]

    def pending(self) -> int:
        """Rounds not yet taken by every rank (for tests)."""
        with self._cond:
            return len(self._rounds)
