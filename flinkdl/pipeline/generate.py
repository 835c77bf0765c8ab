"""The generator's batches, made where they are trained (:class:`~flinkdl.pipeline.train.GenerateAndTrain`)."""

from __future__ import annotations

from flinkdl.config.schema import GeneratorConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.flow import throttle
from flinkdl.sources.generator import ClickStream


class BatchGenerator:
    """Batch index → generated, featurized envelope (a plain object, not a Flink function).

    Generation is a pure function of the index: the same index always makes the same batch.
    """

    def __init__(self, gen: GeneratorConfig, maker: FeatureMaker) -> None:
        self.stream, self.maker = ClickStream.from_config(gen), maker
        self.size, self.events = gen.batch_size, gen.events
        self.throttle = throttle(gen.max_rate_per_s / gen.batch_size if gen.max_rate_per_s else None)

    def exists(self, index: int) -> bool:
        """Whether the bounded stream has a batch ``index`` (an unbounded one has all)."""
        return self.events is None or index * self.size < self.events

    def make(self, index: int) -> Envelope:
        """Batch ``index`` (waits for the throttle first, if any)."""
        if self.throttle is not None:
            self.throttle.wait()
        raw = self.stream.batch(index, self.size)
        if self.events is not None and (index + 1) * self.size > self.events:
            raw = raw.slice(0, self.events - index * self.size)
        return self.maker.envelope(index, raw, raw.num_rows, [], index * self.size)
