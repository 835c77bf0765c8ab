"""The generator's batches, made where they are trained (:class:`~flinkdl.pipeline.train.GenerateAndTrain`)."""

from __future__ import annotations

import numpy as np

from flinkdl.config.schema import GeneratorConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.features.hashing import murmur3_32_int64
from flinkdl.features.transform import Featurizer
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.flow import throttle
from flinkdl.sources.generator import N_CAT, ClickStream


class RankHashes:
    """The featurizer's hash of every ID of the generator's ``C`` fields, by rank: each field's
    vocabulary is hashed once, and a batch's hashes are looked up by the ranks the generator drew
    (the same values :meth:`Featurizer.featurize` computes from the ID columns)."""

    def __init__(self, stream: ClickStream, featurizer: Featurizer) -> None:
        self.tables: list[tuple[str, int, np.ndarray]] = []  # (field name, field index, hash by rank)
        for f in range(N_CAT):
            name = f"C{f + 1}"
            seed = featurizer.int_seed(name)
            if seed is not None:
                self.tables.append((name, f, murmur3_32_int64(stream.field_ids(f), seed)))

    def hashes(self, ranks: list[np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Each field's hashes of a batch's first ``rows`` rows."""
        return {name: table[ranks[f][:rows]] for name, f, table in self.tables}


class BatchGenerator:
    """Batch index → generated, featurized envelope (a plain object, not a Flink function).

    Generation is a pure function of the index: the same index always makes the same batch.
    """

    def __init__(self, gen: GeneratorConfig, maker: FeatureMaker) -> None:
        self.stream, self.maker = ClickStream.from_config(gen), maker
        self.size, self.events = gen.batch_size, gen.events
        self.throttle = throttle(gen.max_rate_per_s / gen.batch_size if gen.max_rate_per_s else None)
        # side tables may replace columns: featurize those batches from their columns
        self.ranks = RankHashes(self.stream, maker.featurizer) if maker.enricher is None else None

    def exists(self, index: int) -> bool:
        """Whether the bounded stream has a batch ``index`` (an unbounded one has all)."""
        return self.events is None or index * self.size < self.events

    def make(self, index: int) -> Envelope:
        """Batch ``index`` (waits for the throttle first, if any)."""
        if self.throttle is not None:
            self.throttle.wait()
        raw, ranks = self.stream.batch_and_ranks(index, self.size)
        if self.events is not None and (index + 1) * self.size > self.events:
            raw = raw.slice(0, self.events - index * self.size)
        hashed = self.ranks.hashes(ranks, raw.num_rows) if self.ranks is not None else None
        return self.maker.envelope(index, raw, raw.num_rows, [], index * self.size, hashed)
