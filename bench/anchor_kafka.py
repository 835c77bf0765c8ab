"""The Kafka paths of bench/anchors.py: the generator path's events, read back from a local broker.

``--paths kafka-csv`` (one csv message per event, Flink's Kafka source, the rows batched in the JVM
before Python) and ``kafka-arrow`` (one Arrow IPC message per ``batch_size`` events), and the same
two read by one Python consumer (``kafka-csv-python``, ``kafka-arrow-python``: ``source.kafka.reader:
python``: read, featurize and train in one operator, flinkdl/pipeline/kafka_train.py; ``...-python-split``:
the reader's operator feeds the trainer's, ``source.kafka.train_in_reader: false``) run the same
job config as the generator path, with only the source switched: every event of the stream is
produced into a fresh topic of a local tansu broker before the job starts (the job reads a
backlog, so its rate is the job's, not the producer's), as bench/kafka.py does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pyarrow as pa

#: --paths: the job's source, and the Kafka message format (None: the built-in generator)
PATHS = {"generator": None, "kafka-csv": "csv", "kafka-arrow": "arrow", "kafka-csv-python": "csv",
         "kafka-arrow-python": "arrow", "kafka-csv-python-split": "csv", "kafka-arrow-python-split": "arrow"}


def broker_for(paths: list[str], log: Path) -> AbstractContextManager:
    """A local broker while the runs need one (``.bootstrap``); else a context of None."""
    if not any(PATHS[p] for p in paths):
        return nullcontext(None)
    from flinkdl.devtools import broker

    return broker.running(log)


def stream_batches(base, events: int) -> Iterator[pa.RecordBatch]:
    """The generator path's first ``events`` events (same seed, drift and batch size), integers as int64."""
    from flinkdl.sources.generator import ClickStream

    gen = base.source.generator
    stream = ClickStream.from_config(gen)
    ints = pa.schema([pa.field(f.name, pa.string() if f.type == pa.string() else pa.int64()) for f in stream.schema])
    for i in range(-(-events // gen.batch_size)):
        yield stream.batch(i, gen.batch_size).slice(0, min(gen.batch_size, events - i * gen.batch_size)).cast(ints)


def kafka_source(base, bootstrap: str, path: str, name: str, events: int) -> tuple[list[str], float]:
    """Produce the stream into topic ``in-NAME`` in ``path``'s format; the ``--set`` overrides that read it, and
    the seconds producing took."""
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import produce
    from flinkdl.sources.generator import ClickStream

    fmt, topic = PATHS[path], f"in-{name}"
    assert fmt is not None
    broker.create_topics(bootstrap, [topic])
    t0 = time.time()
    produce(bootstrap, topic, stream_batches(base, events), fmt, progress=False)
    columns = [f.name for f in ClickStream.from_config(base.source.generator).schema]
    sets = ["source.kind=kafka", f"source.kafka.bootstrap_servers={bootstrap}", f"source.kafka.topic={topic}",
            f"source.kafka.format={fmt}", f"source.kafka.group_id=anchors-{name}",
            "source.kafka.starting_offsets=earliest", f"source.kafka.columns=[{','.join(columns)}]",
            f"source.kafka.reader={'python' if '-python' in path else 'flink'}"]
    if path.endswith("-split"):  # the reader's operator feeds the trainer's (the feature batches cross the JVM)
        sets.append("source.kafka.train_in_reader=false")
    return sets, time.time() - t0
