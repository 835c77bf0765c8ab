"""The built-in generator's CPU per event in the client: this tree's ``ClickStream`` against a base tree's.

    git archive main flinkdl | tar -x -C /tmp/base
    PYTHONPATH=. python bench/generator.py --base /tmp/base [--batches 40] [--rounds 7]

Each tree's ``flinkdl.sources.generator`` runs in its own child process (``PYTHONPATH=TREE``), alternating,
on the same batches (4096 events, the jobs' size, past the drift); each reports its best round's thread CPU
per event (``time.thread_time``: the 2 shared cores' other processes do not count) and the sha256 of every
buffer of its batches and ranks over three stream families and odd batch sizes. Fails unless the digests
are equal (the stream must stay the same to the bit). Prints new / base and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, sys, time
from flinkdl.config.generator_family import FamilyConfig
from flinkdl.sources.generator import ClickStream
batches, rounds = int(sys.argv[1]), int(sys.argv[2])
h = hashlib.sha256()
for fam in (None, FamilyConfig(vocab_scale=0.5, crosses=6, drift="gradual", multi_valued=2),
            FamilyConfig(drift="recurring", drift_strength=2.0, cross_strength=0.5)):
    st = ClickStream(7, drift_at=5000, family=fam)
    for i, size in [(0, 4096), (1, 4096), (2, 4096), (0, 1), (3, 7), (5, 1000), (1, 4097), (2, 333)]:
        b, ranks = st.batch_and_ranks(i, size, with_truth=True)
        for buf in (x for c in b.columns for x in c.buffers() if x is not None):
            h.update(buf)
        for r in ranks:
            h.update(r.tobytes())
st = ClickStream(7)
for i in range(3):
    st.batch_and_ranks(200 + i, 4096)
best = float("inf")
for _ in range(rounds):
    t = time.thread_time()
    for i in range(batches):
        st.batch_and_ranks(300 + i, 4096)
    best = min(best, (time.thread_time() - t) / (batches * 4096))
print(json.dumps({"us_per_event": best * 1e6, "sha256": h.hexdigest()}))
"""


def measure(tree: str, batches: int, rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run([sys.executable, "-c", CHILD, str(batches), str(rounds)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="a tree holding the baseline flinkdl/ package")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pairs", type=int, default=3, help="base/new child pairs, alternating")
    a = ap.parse_args()
    runs: dict[str, list[dict]] = {"base": [], "new": []}
    for _ in range(a.pairs):
        for name, tree in (("base", str(Path(a.base).resolve())), ("new", str(ROOT))):
            runs[name].append(measure(tree, a.batches, a.rounds))
    digests = {r["sha256"] for rs in runs.values() for r in rs}
    if len(digests) != 1:
        raise SystemExit(f"the streams differ: {digests}")
    best = {name: min(r["us_per_event"] for r in rs) for name, rs in runs.items()}
    print(f"generator CPU per event: base {best['base']:.3f} us, new {best['new']:.3f} us, "
          f"new / base {best['new'] / best['base']:.3f}; same stream (sha256 {digests.pop()[:12]}...)")
    print(json.dumps({"us_per_event": best, "all": {k: [r["us_per_event"] for r in v] for k, v in runs.items()},
                      "new_over_base": best["new"] / best["base"], "load": list(os.getloadavg())}))


if __name__ == "__main__":
    main()
