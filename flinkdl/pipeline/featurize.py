"""Featurize: raw batches → feature :class:`~flinkdl.exchange.envelope.Envelope` s.

:class:`FeatureMaker` is the one place a raw batch becomes an envelope (features, dead letters
and notices, evaluation columns); the source operators (:class:`ParseFeatures` here,
:class:`~flinkdl.pipeline.kafka_in.KafkaFeatures`, the generator's
:class:`~flinkdl.pipeline.generate.BatchGenerator`) each own one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
from pyflink.common import Row
from pyflink.datastream import FlatMapFunction, RuntimeContext

from flinkdl.config.enrich import source_features
from flinkdl.config.schema import JobConfig
from flinkdl.exchange.channel import pack
from flinkdl.exchange.envelope import Envelope, sequence
from flinkdl.exchange.eval_columns import EvalColumns
from flinkdl.exchange.freshness import stamp
from flinkdl.exchange.letters import encode_letters
from flinkdl.features.deadletter import DeadLetter, Notice
from flinkdl.features.enrich import Enricher
from flinkdl.features.transform import Featurizer
from flinkdl.pipeline.operator import open_operator, section
from flinkdl.pipeline.routing import subtask_index


class FeatureMaker:
    """Raw batch (+ the dead letters and notices of its decoding) → one feature envelope."""

    def __init__(self, featurizer: Featurizer, eval_columns: EvalColumns, stamp_arrival: bool = False,
                 enricher: Enricher | None = None) -> None:
        """``stamp_arrival``: stamp each envelope with its arrival time (:mod:`flinkdl.exchange.freshness`);
        ``enricher``: the side tables joined to each raw batch."""
        self.featurizer, self.eval_columns, self.stamp_arrival = featurizer, eval_columns, stamp_arrival
        self.enricher = enricher
        #: ``(raw, keep) -> float32 per kept row``: the weighted layout's ``weight`` column (None: unweighted)
        self.weights: Callable[[pa.RecordBatch | pa.Table, np.ndarray], np.ndarray] | None = None

    @classmethod
    def from_config(cls, cfg: JobConfig) -> FeatureMaker:
        directory = cfg.source.directory
        # event times travel when something publishes them or learns model age from them
        event_time = cfg.sinks.kafka is not None or cfg.sinks.predictions is not None or cfg.ps.enabled
        return cls(Featurizer(cfg.features, delimiter=directory.delimiter if directory else ","),
                   EvalColumns(cfg.evaluation, cfg.features.timestamp, event_time=event_time),
                   stamp_arrival=cfg.metrics.enabled, enricher=Enricher(cfg.enrich) if cfg.enrich else None)

    def envelope(self, seq: int, raw: pa.RecordBatch | pa.Table, rows_in: int,
                 letters: Sequence[DeadLetter | Notice], position: int,
                 hashed: Mapping[str, np.ndarray] | None = None) -> Envelope:
        """``raw`` joined with the side tables (``enrich``) and featurized (positions from ``position``);
        ``letters`` go first in its dead letters. ``hashed``: see :meth:`Featurizer.featurize`."""
        arrived_ms = int(time.time() * 1000)
        if self.enricher is not None:
            raw = self.enricher.enrich(raw)
        out = self.featurizer.featurize(raw, position_offset=position, hashed=hashed)
        dead = [x.to_dict() for x in letters if isinstance(x, DeadLetter)] + [d.to_dict() for d in out.dead]
        notices = [x.to_dict() for x in letters if isinstance(x, Notice)]
        columns = self.eval_columns.take(raw, out.keep)
        if self.stamp_arrival:
            columns = stamp(columns, out.batch.num_rows, arrived_ms=arrived_ms)
        batch = out.batch
        if self.weights is not None:
            batch = batch.append_column("weight", pa.array(self.weights(raw, out.keep), pa.float32()))
        return Envelope(seq, rows_in, pack(batch), encode_letters(dead, notices), columns)


class ParseFeatures(FlatMapFunction):
    """A chunk of text lines (from the watched directory) → parsed, featurized envelopes."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        cfg = open_operator(self.cfg_json)
        self.maker = FeatureMaker.from_config(cfg)
        self.directory = section(cfg.source.directory, "source.directory")
        self.features = source_features(cfg.features, cfg.enrich)  # the rest comes from side tables
        self.max_rows = cfg.source.max_batch_rows
        self.subtask = subtask_index(ctx)
        self.count = 0
        self.position = 0

    def flat_map(self, chunk: Row) -> Iterator[Row]:
        """One envelope per ``source.max_batch_rows`` good rows of the chunk, each
        with its own ``seq`` and the dead letters among its rows (:func:`split_parsed`)."""
        from flinkdl.features.parse import parse_text, split_parsed

        text, lines = chunk[0], chunk[1]
        d = self.directory
        raw, dead = parse_text(text, d, self.features, self.position, pad_short_rows=d.pad_short_rows)
        for piece, piece_dead, rows_in, first in split_parsed(raw, dead, self.max_rows, self.position):
            yield self.maker.envelope(sequence(self.subtask, self.count), piece, rows_in, piece_dead, first).row()
            self.count += 1
        self.position += lines
