"""The local broker's own latency: produce → consume of single messages, no Flink job.

    python bench/broker_latency.py                  # 100 msg/s for 5 s per fetch.wait.max.ms

Starts tansu (in memory), produces 300-byte messages at ``--rate`` (``linger.ms`` 5, as
bench/latency.py's producer) and consumes them with librdkafka (assigned partition, no group);
reports per ``fetch.wait.max.ms`` the producer's ack time and the consume time after CreateTime,
p0/p50/p99/max (the first 100 messages are left out). This is the floor under bench/latency.py's
numbers: the job's input hop goes through the same broker.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--messages", type=int, default=500)
    p.add_argument("--fetch-wait-ms", nargs="+", type=int, default=[500, 100, 10, 1])
    args = p.parse_args()

    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    from flinkdl.devtools import broker

    rows = []
    with tempfile.TemporaryDirectory() as tmp, broker.running(Path(tmp) / "tansu.log") as b:
        for wait in args.fetch_wait_ms:
            topic = f"probe-{wait}"
            broker.create_topics(b.bootstrap, [topic])
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic, "fetch.wait.max.ms": wait,
                          "fetch.error.backoff.ms": 1, "enable.auto.commit": False})
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            prod = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
            acks: list[float] = []

            def on_ack(_err, m, acks=acks) -> None:
                acks.append(time.time() * 1000 - m.timestamp()[1])

            def send(prod=prod, topic=topic, on_ack=on_ack) -> None:
                for i in range(args.messages):
                    prod.produce(topic, b"x" * 300, str(i).encode(), on_delivery=on_ack)
                    prod.poll(0)
                    time.sleep(1 / args.rate)
                prod.flush(10)

            th = threading.Thread(target=send)
            th.start()
            got: list[float] = []
            t0 = time.time()
            while len(got) < args.messages and time.time() - t0 < args.messages / args.rate + 10:
                got += [time.time() * 1000 - m.timestamp()[1] for m in c.consume(1000, 0.2) if m.error() is None]
            th.join()
            c.close()
            q = [0, 50, 99, 100]
            rows.append({"fetch_wait_max_ms": wait, "consume_ms": np.percentile(got[100:], q).round(1).tolist(),
                         "ack_ms": np.percentile(acks[100:], q).round(1).tolist()})
            print(f"fetch.wait.max.ms {wait:>4}: consume after CreateTime p0/p50/p99/max {rows[-1]['consume_ms']}"
                  f"  producer ack {rows[-1]['ack_ms']}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
