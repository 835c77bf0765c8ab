"""``flinkdl produce``: replay the built-in click stream or a CSV/TSV file into a Kafka topic.

Formats (what the job's ``source.kafka.format`` reads): ``csv`` — one event per message, fields
in the stream's column order, no header; ``json`` — one JSON object per message; ``arrow`` — one
Arrow IPC stream (schema + one RecordBatch of ``batch_size`` events) per message. Row messages
are keyed by ``event_id`` when there is such a column. ``rate`` throttles to events per second.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from flinkdl.config.schema import GeneratorConfig


def generator_batches(limit: int, batch_size: int = 4096, seed: int = 7,
                      preset: str | None = None) -> Iterator[pa.RecordBatch]:
    """The built-in stream's first ``limit`` events (``I*`` as integers, missing = null); ``preset``:
    a member of the generator family instead (its own seed; multi-valued fields as strings)."""
    from flinkdl.sources.generator import ClickStream

    stream = ClickStream.from_config(GeneratorConfig(seed=seed, events=limit, batch_size=batch_size, preset=preset))
    ints = pa.schema([pa.field(f.name, pa.string() if f.type == pa.string() else pa.int64()) for f in stream.schema])
    for i in range(-(-limit // batch_size)):
        yield stream.batch(i, batch_size).slice(0, min(batch_size, limit - i * batch_size)).cast(ints)


def file_batches(path: Path, batch_size: int = 4096, limit: int | None = None, delimiter: str | None = None,
                 text: bool = False) -> Iterator[pa.RecordBatch]:
    """Rows of a file with a header: ``delimiter``-separated, by default CSV (``.csv``) or TSV (any other
    extension, e.g. MovieLens ``.inter``). A header that is one column holding another common separator
    is an error naming it (every message would otherwise be one field: a dead letter in the job).
    ``text``: every value as written (an id ``0155061224`` keeps its zero; csv messages), else typed."""
    delim = delimiter or ("," if path.suffix == ".csv" else "\t")
    if len(delim) != 1:
        raise ValueError(f"--delimiter {delim!r}: one character (convert a file separated by {delim!r} first, "
                         f"e.g. sed 's/{delim}/\\t/g')")
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    others = [c for c in (",", "\t", ";", "|", ":") if c != delim and c in header]
    if delim not in header and others:
        raise ValueError(f"{path}: the header {header.strip()[:80]!r} has no {delim!r} but {others[0]!r}: "
                         f"pass --delimiter {others[0]!r}")
    names = header.rstrip("\r\n").split(delim)
    conv = pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False)
    return _file_rows(path, batch_size, limit, delim, conv if text else None)


def _file_rows(path: Path, batch_size: int, limit: int | None, delim: str,
               conv: pcsv.ConvertOptions | None) -> Iterator[pa.RecordBatch]:
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22),
                           parse_options=pcsv.ParseOptions(delimiter=delim), convert_options=conv)
    left = limit
    for b in reader:
        for off in range(0, b.num_rows, batch_size):
            part = b.slice(off, batch_size if left is None else min(batch_size, left))
            yield part
            if left is not None:
                left -= part.num_rows
                if left <= 0:
                    return


def encode(batch: pa.RecordBatch, fmt: str) -> list[bytes]:
    """A batch → its Kafka message values in ``fmt``."""
    if fmt == "arrow":
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as w:
            w.write_batch(batch)
        return [sink.getvalue().to_pybytes()]
    if fmt == "csv" and all(pa.types.is_string(t) for t in batch.schema.types):
        # a file's text as written: a value is quoted only when it holds a comma, a quote or a line break
        cols = []
        for c in batch.columns:
            c = pc.fill_null(c, "")
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(c, '"', '""'), '"', "")
            cols.append(pc.if_else(pc.match_substring_regex(c, '[,"\r\n]'), quoted, c))
        return [v.encode() for v in pc.binary_join_element_wise(*cols, ",").to_pylist()]
    if fmt == "csv":
        buf = io.BytesIO()
        pcsv.write_csv(batch, buf, pcsv.WriteOptions(include_header=False))
        return buf.getvalue().splitlines()
    return [json.dumps(r, separators=(",", ":")).encode() for r in batch.to_pylist()]


class AckedProducer:
    """A Kafka producer that waits out a full local queue and, at :meth:`flush`, fails if any message
    was not acknowledged (``acks=all``)."""

    def __init__(self, bootstrap: str, properties: dict | None = None) -> None:
        from confluent_kafka import Producer

        self.failed: list[str] = []
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                                  "queue.buffering.max.messages": 1_000_000, "delivery.report.only.error": True,
                                  "message.max.bytes": 64 << 20,
                                  "on_delivery": self._on_delivery, **(properties or {})})

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed.append(str(err))

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one message, serving delivery reports while the local queue is full."""
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                self.producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery reports without waiting (call once per batch)."""
        self.producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every message's acknowledgement; raise if any is missing or failed."""
        left = self.producer.flush(timeout_s)
        if left or self.failed:
            raise RuntimeError(f"produce: {left} messages not delivered, {len(self.failed)} failed "
                               f"({self.failed[0] if self.failed else 'timeout'})")


def produce(bootstrap: str, topic: str, batches: Iterator[pa.RecordBatch], fmt: str = "csv",
            rate: float | None = None, total: int | None = None, progress: bool = True,
            properties: dict | None = None) -> int:
    """Produce every event of ``batches``; return the number of events. Fails if any is not acked."""
    from tqdm import tqdm

    p = AckedProducer(bootstrap, properties)
    bar = tqdm(total=total, unit="ev", unit_scale=True, disable=not progress, desc=f"produce → {topic}")
    t0, sent = time.time(), 0
    for batch in batches:
        values = encode(batch, fmt)
        keys: list[bytes | None] = [None] * len(values)
        if fmt != "arrow" and "event_id" in batch.schema.names:
            keys = [str(x).encode() for x in batch.column("event_id").to_pylist()]
        for k, v in zip(keys, values, strict=True):
            p.send(topic, v, k)
        p.poll()
        sent += batch.num_rows
        bar.update(batch.num_rows)
        if rate:
            ahead = sent / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
    try:
        p.flush(60)
    finally:
        bar.close()
    return sent


def read_topic(bootstrap: str, topic: str, expect: int | None = None, idle_s: float = 5.0,
               max_s: float = 300.0) -> list:
    """Every message of ``topic`` from the beginning (all partitions, no consumer group): stops at
    ``expect`` messages, or after ``idle_s`` without a new one, or after ``max_s``."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "flinkdl-read-topic", "enable.auto.commit": False,
                  "fetch.message.max.bytes": 64 << 20})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list = []
        t0 = last = time.time()
        while (expect is None or len(out) < expect) and time.time() - last < idle_s and time.time() - t0 < max_s:
            for m in c.consume(10_000, 0.5):
                if m.error() is None:
                    out.append(m)
                    last = time.time()
        return out
    finally:
        c.close()
