"""LR's XLA step (``model.xla_step``): its first step (compile) and the programs a stream compiles, vs the generic step.

    PYTHONPATH=. python bench/xla_startup.py [--events 1000000] [--rounds 2] [--max-rows 0]

Each variant (``model.xla_step=false`` and ``auto``) runs in a fresh process (TensorFlow imported anew, as
a worker starts), alternating ``--rounds`` times: the built-in stream, LR as ``bench/anchors.py`` runs it,
each batch generated and featurized between steps. ``--max-rows N``: batches of a random 1..N rows (a
Kafka source's), not the generator's fixed size; ``--max-rows=-N``: batches of N rows. Per run: the first
step's wall time (tracing, and XLA's compile), the steps that took > 50 ms after it (a new shape compiled),
the programs (padded shapes) compiled, the steps the generic step took past the cap, the CPU per event of
the steps after the first (and of those that took <= 50 ms: no compile), and how far the two variants'
scores of the last batch are apart. Prints ratios and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(events: int, setting: str, max_rows: int) -> dict:
    """One variant in this process."""
    import numpy as np
    import tensorflow as tf
    from streams import MODEL_SETTINGS  # bench/, beside this file

    from flinkdl.config.loader import load_config
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.features.transform import Featurizer
    from flinkdl.models import build_model
    from flinkdl.sources.generator import ClickStream

    cfg = load_config(str(ROOT / "jobs/click_stream.yaml"),
                      ["model.name=lr", *MODEL_SETTINGS["lr"], f"model.xla_step={setting}"])
    tf.config.threading.set_intra_op_parallelism_threads(1)
    gen, lay = cfg.source.generator, FeatureLayout.from_config(cfg.features)
    stream, fz = ClickStream.from_config(gen), Featurizer(cfg.features)
    rng = np.random.default_rng(0)
    model = build_model(lay, cfg.model)
    step, generic = model._fast_step, [0]
    if step is not None:  # count the batches it leaves to the generic step (a shape past MAX_PROGRAMS)
        def counted(*a: object) -> object:
            out = step(*a)
            generic[0] += out is None
            return out
        model._fast_step = counted
    done, k, first, slow, cpu, scores = 0, 0, 0.0, 0, 0.0, np.zeros(0)
    steady = [0.0, 0]  # CPU and events of the steps that took <= 50 ms (no compile, no tracing)
    while done < events:
        raw = stream.batch(k, gen.batch_size).slice(0, events - done)
        m = np.stack([c.to_numpy() for c in fz.transform(raw)[0].columns[1:]], axis=1)
        cuts = (np.cumsum(rng.integers(1, max_rows + 1, len(m)))[:-1] if max_rows > 0  # random 1..N rows
                else np.arange(-max_rows, len(m), -max_rows) if max_rows < 0 else [])  # -N: N rows each
        for part in np.array_split(m, cuts):
            if not len(part):
                continue
            ids, dense = part[:, 1:1 + lay.n_ids].astype(np.int64), part[:, 1 + lay.n_ids:].astype(np.float32)
            t0, c0 = time.perf_counter(), time.process_time()
            scores = model.predict_then_train(ids, dense, part[:, 0].astype(np.float32)).numpy()
            wall = time.perf_counter() - t0
            if done == 0:
                first = wall
            else:
                cpu += time.process_time() - c0
                slow += wall > 0.05
                if wall <= 0.05:
                    steady[0] += time.process_time() - c0
                    steady[1] += len(part)
            done += len(part)
        k += 1
    return {"setting": setting, "first_step_s": first, "slow_steps": slow, "events": done,
            "programs": len(step.shapes) if step is not None else 0,
            "shapes": sorted(step.shapes) if step is not None else [],
            "generic_steps": generic[0] if step is not None else model.version,
            "step_cpu_us_per_event": 1e6 * cpu / done, "steady_cpu_us_per_event": 1e6 * steady[0] / steady[1],
            "last_scores": scores[:64].tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-rows", type=int, default=0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT / "bench"))
        print(json.dumps(child(args.events, args.child, args.max_rows)))
        return
    runs: dict[str, list[dict]] = {"false": [], "auto": []}
    for _ in range(args.rounds):
        for setting in runs:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", setting, "--events", str(args.events),
                                  "--max-rows", str(args.max_rows)], capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["process_s"] = time.perf_counter() - t0
            runs[setting].append(row)
            print(f"xla_step={setting}: first step {row['first_step_s']:.3f} s, {row['slow_steps']} slow steps, "
                  f"{row['programs']} programs {row['shapes']}, generic steps {row['generic_steps']}, "
                  f"step CPU {row['step_cpu_us_per_event']:.3f} µs/event (steps <= 50 ms: "
                  f"{row['steady_cpu_us_per_event']:.3f})", flush=True)
    best = {s: {k: min(r[k] for r in rows) for k in ("first_step_s", "step_cpu_us_per_event",
                                                                "steady_cpu_us_per_event")}
            for s, rows in runs.items()}
    diff = max(abs(a - b) for a, b in zip(runs["false"][0]["last_scores"], runs["auto"][0]["last_scores"],
                                          strict=True))
    a, f = best["auto"], best["false"]
    print(f"auto - false: first step {a['first_step_s'] - f['first_step_s']:+.3f} s, "
          f"step CPU ×{a['step_cpu_us_per_event'] / f['step_cpu_us_per_event']:.3f} "
          f"(steps <= 50 ms ×{a['steady_cpu_us_per_event'] / f['steady_cpu_us_per_event']:.3f}), "
          f"last scores within {diff:.2e}")
    for rows in runs.values():
        for r in rows:
            del r["last_scores"]
    print(json.dumps({"runs": runs, "best": best, "max_score_diff": diff}))


if __name__ == "__main__":
    main()
