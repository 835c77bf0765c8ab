"""The client's csv decode of Kafka row messages, CPU µs per event by piece size (issue 19, item 2).

    python bench/kafka_decode.py [--events 81920] [--repeat 5]

The built-in stream's events as csv messages (one per event, as ``flinkdl produce`` writes them),
decoded as :class:`~flinkdl.pipeline.kafka_in.KafkaFeatures` does (``MessageDecoder.rows``: one
``b"\\n".join`` and one ``pyarrow.csv`` read per piece, with the dead-letter checks) in pieces of
512 … all messages; then featurize + pack of the decoded events. Baseline, same run: one bare
``pyarrow.csv.read_csv`` of all the joined messages, every column a string (no checks, no letters).
Best of ``--repeat`` runs, process CPU time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from flinkdl.config.loader import load_config
from flinkdl.devtools.produce import encode, generator_batches
from flinkdl.features.parse import split_parsed
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.sources.kafka import decoder

JOB = Path(__file__).resolve().parents[1] / "jobs" / "click_stream_kafka.yaml"


def cpu_us(fn, events: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return 1e6 * best / events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=81920)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    cfg = load_config(JOB, ["source.max_batch_rows=4096"])
    msgs = [m for b in generator_batches(args.events, 4096) for m in encode(b, "csv")]
    n, d, maker = len(msgs), decoder(cfg), FeatureMaker.from_config(cfg)
    assert d.csv is not None
    data = b"\n".join(msgs)
    opts = (pcsv.ReadOptions(column_names=d.csv.columns, use_threads=False, block_size=len(data) + 1),
            pcsv.ConvertOptions(column_types={c: pa.string() for c in d.csv.columns}))
    base = cpu_us(lambda: pcsv.read_csv(pa.BufferReader(data), read_options=opts[0], convert_options=opts[1]),
                  n, args.repeat)
    rows = {}
    for piece in (512, 1024, 2048, 4096, 8192, 16384, n):
        rows[piece] = cpu_us(lambda piece=piece: [d.rows(msgs[i:i + piece], i) for i in range(0, n, piece)],
                             n, args.repeat)
    raw, letters = d.rows(msgs, 0)
    feat = cpu_us(lambda: [maker.envelope(k, r, rin, pl, first) for k, (r, pl, rin, first)
                           in enumerate(split_parsed(raw, letters, 4096, 0))], n, args.repeat)
    print(f"{n:,} csv messages, {len(data) / n:.0f} bytes each; bare read_csv of all: {base:.2f} µs/event")
    print("| piece (messages) | decode µs/event | / bare read_csv |\n|---|---|---|")
    for piece, us in rows.items():
        print(f"| {piece:,} | {us:.2f} | {us / base:.2f} |")
    print(f"featurize + pack (pieces of 4,096): {feat:.2f} µs/event")
    print(json.dumps({"events": n, "bare_read_csv_us": base, "decode_us_by_piece": rows, "featurize_pack_us": feat}))


if __name__ == "__main__":
    main()
