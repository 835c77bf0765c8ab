"""``flinkdl produce --generator --feedback-topic``: impressions and delayed clicks, both topics in event-time order.

Impressions (the built-in stream without its label) go to one topic, click events
(``{"event_id", "ts", "label": 1}``, ``ts`` = click time) to the other, interleaved by event time
(:class:`~flinkdl.sources.delayed.DelayedStream`), as fast as the broker takes them (fast-forward)
or at ``rate`` impressions per second. ``end_tick_s`` ends both topics with a *tick*, that many
event-time seconds after the last event: on the feedback topic a message of an id no impression
has (the join counts it ``orphan``), on the impressions topic a message with a time and no id
(``bad_message``, never served). The ticks move the watermark on, so every attribution window
of the stream closes (once every input is idle, Flink's watermark no longer advances).
"""

from __future__ import annotations

import json
import time

from flinkdl.config.feedback import DelayConfig
from flinkdl.config.schema import GeneratorConfig
from flinkdl.devtools.produce import AckedProducer, encode

#: The id of the end tick (no impression has it: the generator's ids count up from 0).
TICK_ID = 1 << 62


def end_ticks(ts: int, topic: str, feedback_topic: str) -> list[tuple[str, bytes]]:
    """The two tick messages at event time ``ts``: ``[(topic, value), (feedback_topic, value)]``."""
    return [(topic, json.dumps({"ts": ts}).encode()),
            (feedback_topic, json.dumps({"event_id": TICK_ID, "ts": ts, "label": 0}).encode())]


def produce_delayed(bootstrap: str, topic: str, feedback_topic: str, limit: int, batch_size: int = 1024,
                    seed: int = 7, delay: DelayConfig | None = None, rate: float | None = None,
                    end_tick_s: float | None = None, events_per_s: float = 1000.0) -> tuple[int, int]:
    """Produce ``limit`` impressions and their delayed clicks; return ``(impressions, clicks)``."""
    from flinkdl.sources.delayed import DelayedStream
    from flinkdl.sources.generator import ClickStream

    p = AckedProducer(bootstrap)
    gen = GeneratorConfig(seed=seed, events=limit, events_per_s=events_per_s)
    stream = DelayedStream(ClickStream.from_config(gen), delay or DelayConfig())
    counts = {"impressions": 0, "clicks": 0}
    t0, last_ts = time.time(), 0
    for kind, batch in stream.events(limit, batch_size):
        to = topic if kind == "impressions" else feedback_topic
        keys = [str(x).encode() for x in batch.column("event_id").to_pylist()]
        for k, v in zip(keys, encode(batch, "json"), strict=True):
            p.send(to, v, k)
        p.poll()
        counts[kind] += batch.num_rows
        last_ts = max(last_ts, batch.column("ts")[-1].as_py())
        if rate and kind == "impressions" and (ahead := counts[kind] / rate - (time.time() - t0)) > 0:
            time.sleep(ahead)
    if end_tick_s is not None:
        for to, tick in end_ticks(last_ts + int(end_tick_s * 1000), topic, feedback_topic):
            p.send(to, tick)
    p.flush(60)
    return counts["impressions"], counts["clicks"]
