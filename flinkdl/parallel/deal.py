"""How the generator's batches are dealt at ``parallel.sync_steps``: every rank gets its share of every batch.

Batch ``i`` at parallelism 1 is learnt in steps of ``m`` rows (``model.micro_batch_rows``, or the whole
batch). Rank ``k`` of ``p`` takes the ``k``-th ``m / p`` rows of each such block, so the p ranks' micro-step
``j`` together covers exactly block ``j``: the synchronous job steps on the very rows, in the very steps, of
the job at parallelism 1. The index source then counts *virtual* indexes ``v = i * p + k`` (rank ``k``'s
share of batch ``i``), which the trainers' routing (``v % p``) sends to rank ``k``; generation stays a pure
function of the index, so replays make the same shares.
"""

from __future__ import annotations

import numpy as np

from flinkdl.config.schema import GeneratorConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.generate import BatchGenerator


def share_rows(n: int, rank: int, world: int, step_rows: int) -> np.ndarray:
    """Offsets of rank ``rank``'s share of an ``n``-row batch: its ``step_rows / world`` of each ``step_rows`` block."""
    per = -(-step_rows // world)
    offsets = np.arange(n)
    return offsets[(offsets % step_rows) // per == rank]


class SharedBatchGenerator(BatchGenerator):
    """Virtual index ``i * world + rank`` → rank ``rank``'s share of batch ``i`` (see the module docstring)."""

    def __init__(self, gen: GeneratorConfig, maker: FeatureMaker, rank: int, world: int, step_rows: int) -> None:
        super().__init__(gen, maker)
        self.rank, self.world, self.step_rows = rank, world, step_rows

    def exists(self, index: int) -> bool:
        return super().exists(index // self.world)

    def make(self, index: int) -> Envelope:
        batch = index // self.world
        if self.throttle is not None:
            self.throttle.wait()
        raw = self.stream.batch(batch, self.size)
        if self.events is not None and (batch + 1) * self.size > self.events:
            raw = raw.slice(0, self.events - batch * self.size)
        raw = raw.take(share_rows(raw.num_rows, self.rank, self.world, self.step_rows))
        return self.maker.envelope(index, raw, raw.num_rows, [], batch * self.size)
