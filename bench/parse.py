"""Parsing cost of a watched-directory chunk: ``parse_text`` against pyarrow's bare CSV reader.

    python bench/parse.py [--rows 100000] [--repeat 15]

Three 100k-line chunks of ``eid,label,user,movie,genres,ts`` rows: plain, every string field
quoted, and plain with one unterminated quote in the middle (the line-by-line check then runs).
The baseline, timed in the same run, is ``pyarrow.csv.read_csv`` on the plain chunk (no line
checks, no dead letters): the floor for any parser built on it. Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import pyarrow.csv as pacsv

from flinkdl.config.features import FeatureConfig
from flinkdl.config.sources import DirectoryConfig
from flinkdl.features.parse import parse_text

COLUMNS = ["eid", "label", "user", "movie", "genres", "ts"]


def chunks(rows: int) -> dict[str, str]:
    plain = [f"{i},{i % 3 == 0:d},{i % 943},{i % 1682},Action|Comedy,{1_000_000 + i}" for i in range(rows)]
    quoted = [f'{i},{i % 3 == 0:d},{i % 943},{i % 1682},"Action, Comedy",{1_000_000 + i}' for i in range(rows)]
    bad = list(plain)
    bad[rows // 2] = f'{rows // 2},1,1,1,"unterminated,5'
    return {"plain": "\n".join(plain), "quoted": "\n".join(quoted), "one_bad_quote": "\n".join(bad)}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    d = DirectoryConfig(path="unused", columns=COLUMNS)
    f = FeatureConfig.model_validate({
        "event_id": "eid", "label": {"column": "label"}, "timestamp": "ts",
        "categorical": [{"name": "user", "type": "int"}, {"name": "movie", "type": "int"},
                        {"name": "genres", "type": "string"}]})
    texts = chunks(args.rows)
    opts = pacsv.ReadOptions(column_names=COLUMNS)
    base = best(lambda: pacsv.read_csv(io.BytesIO(texts["plain"].encode()), read_options=opts), args.repeat)
    out: dict[str, float] = {"rows": args.rows, "baseline_pyarrow_ms": base * 1e3}
    print(f"baseline: pyarrow.csv.read_csv, plain chunk: {base * 1e3:7.2f} ms ({args.rows / base:,.0f} rows/s)")
    for name, text in texts.items():
        batch, dead = parse_text(text, d, f)
        assert batch.num_rows + len(dead) == args.rows, (name, batch.num_rows, len(dead))
        t = best(lambda text=text: parse_text(text, d, f), args.repeat)
        out[f"{name}_ms"] = t * 1e3
        out[f"{name}_x_baseline"] = t / base
        print(f"parse_text {name:>13}: {t * 1e3:7.2f} ms ({args.rows / t:,.0f} rows/s), {t / base:4.2f}x the baseline")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
