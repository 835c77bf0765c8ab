"""The local broker's storage: in memory vs durable (tansu on flinkdl.devtools.s3dir), start-up and throughput.

    python bench/broker.py                    # 200k events as CSV rows and as Arrow messages
    python bench/broker.py --events 500000 --formats csv

Per storage: time to a broker that accepts connections (durable: cold = object server + tansu, and a
tansu restart on existing data, as after ``kill -9``), then per format the built-in stream's first
``--events`` events produced into a fresh topic (``flinkdl.devtools.produce``, acks=all) and read back
(``read_topic``). A few seconds of measurement, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--formats", nargs="+", default=["csv", "arrow"], choices=["csv", "json", "arrow"])
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()

    from end_to_end import report  # bench/, beside this file

    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import generator_batches, produce, read_topic

    rows = []
    for storage in ("memory", "durable"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            b = broker.start(Path(tmp) / "tansu.log", durable_dir=Path(tmp) / "data" if storage == "durable" else None)
            start_s = time.time() - t0
            try:
                for fmt in args.formats:
                    topic = f"bench-{fmt}"
                    broker.create_topics(b.bootstrap, [topic])
                    t0 = time.time()
                    produce(b.bootstrap, topic, generator_batches(args.events, 4096), fmt, progress=False)
                    produce_s = time.time() - t0
                    t0 = time.time()
                    expect = -(-args.events // 4096) if fmt == "arrow" else args.events
                    msgs = read_topic(b.bootstrap, topic, expect=expect)
                    read_s = time.time() - t0
                    restart_s = None
                    if storage == "durable":
                        b.kill()
                        t0 = time.time()
                        b.restart()
                        restart_s = time.time() - t0
                    mb = sum(len(m.value()) for m in msgs) / 1e6
                    rows.append({"storage": storage, "format": fmt, "events": args.events, "messages": len(msgs),
                                 "start_s": start_s, "restart_s": restart_s, "produce_ev_s": args.events / produce_s,
                                 "read_ev_s": args.events / read_s, "mb": mb, "produce_mb_s": mb / produce_s,
                                 "read_mb_s": mb / read_s})
                    print(rows[-1], flush=True)
            finally:
                b.stop()
    report(rows, ["storage", "format", "messages", "start s", "restart s", "produce ev/s", "produce MB/s",
                  "read ev/s", "read MB/s"],
           lambda r: [r["storage"], r["format"], f"{r['messages']:,}", f"{r['start_s']:.2f}",
                      "-" if r["restart_s"] is None else f"{r['restart_s']:.2f}", f"{r['produce_ev_s']:,.0f}",
                      f"{r['produce_mb_s']:.1f}", f"{r['read_ev_s']:,.0f}", f"{r['read_mb_s']:.1f}"], args.json)


if __name__ == "__main__":
    main()
