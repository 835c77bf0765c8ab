"""Kafka in: a chunk of row messages, or one Arrow message → featurized envelopes (see :mod:`flinkdl.sources.kafka`)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

from pyflink.common import Row
from pyflink.datastream import FlatMapFunction, RuntimeContext

from flinkdl.exchange.envelope import Envelope, sequence
from flinkdl.features.deadletter import MALFORMED, DeadLetter
from flinkdl.features.parse import split_parsed
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.operator import open_operator, section
from flinkdl.pipeline.routing import subtask_index
from flinkdl.sources.messages import empty_batch

#: row messages decoded in one call, about: per event, the parse is cheapest near a megabyte of text
#: (docs/BENCHMARKS.md); a chunk is decoded in pieces of whole ``source.max_batch_rows`` steps
DECODE_MESSAGES = 4096


class KafkaFeatures(FlatMapFunction):
    """``Row(messages, n)`` of csv/json messages, or ``Row(message)`` of one Arrow message → envelopes.

    A chunk leaves as envelopes of at most ``source.max_batch_rows`` good rows each, as
    :class:`~flinkdl.pipeline.featurize.ParseFeatures` cuts a directory window: a lagging topic's
    backlog is learnt in prequential steps of that size, not as a few huge batches.

    Bad input never fails the task: decoding turns it into dead letters (:mod:`flinkdl.sources.messages`),
    and should a chunk still raise, it is split in halves until the message that raises is alone;
    that one is dead-lettered (``malformed``) and every other message goes on.
    """

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.sources.kafka import decoder

        cfg = open_operator(self.cfg_json)
        self.maker = FeatureMaker.from_config(cfg)
        self.decoder = decoder(cfg)
        self.arrow = section(cfg.source.kafka, "source.kafka").format == "arrow"
        self.max_rows = cfg.source.max_batch_rows
        self.subtask = subtask_index(ctx)
        self.count = self.position = 0

    def flat_map(self, element: Row) -> Iterator[Row]:
        """The element's envelopes, made lazily: row messages are decoded a piece at a time (see :meth:`piece`)."""
        if self.arrow:
            msgs, decode = [element[0]], lambda m, pos: self.decoder.arrow(bytes(m[0] or b""), pos)
        else:
            msgs, decode = [bytes(m) for m in element[0]], self.decoder.rows
        step = self.piece() if not self.arrow else 1
        for i in range(0, len(msgs), step):
            for env in self._chunk(msgs[i:i + step], self.position + i, decode):
                yield env.row()
        self.position += len(msgs)

    def piece(self) -> int:
        """Row messages decoded in one call: whole steps of ``source.max_batch_rows``, about
        :data:`DECODE_MESSAGES` (one csv parse of a few MB costs more per row than a few of 1 MB)."""
        return self.max_rows * max(1, round(DECODE_MESSAGES / self.max_rows))

    def _chunk(self, msgs: list, pos: int, decode: Callable) -> Iterator[Envelope]:
        """The chunk's envelopes: one per ``source.max_batch_rows`` good rows (:func:`split_parsed`)."""
        try:
            raw, letters = decode(msgs, pos)
            out = [self.maker.envelope(sequence(self.subtask, self.count + k), piece, rows_in, piece_letters, first)
                   for k, (piece, piece_letters, rows_in, first)
                   in enumerate(split_parsed(raw, letters, self.max_rows, pos))]
        except Exception as e:
            if len(msgs) > 1:
                half = len(msgs) // 2
                yield from self._chunk(msgs[:half], pos, decode)
                yield from self._chunk(msgs[half:], pos + half, decode)
                return
            data = bytes(msgs[0] or b"")
            bad = DeadLetter(MALFORMED, value=f"cannot featurize: {type(e).__name__}: {e}",
                             raw=base64.b64encode(data).decode(), position=pos, raw_encoding="base64")
            out = [self.maker.envelope(sequence(self.subtask, self.count), empty_batch(self.decoder.columns), 1,
                                       [bad], pos)]
        self.count += len(out)
        yield from out
