"""Issue 19's goals, checked on the rows of one bench/anchors.py run (those the run has rows for)."""

from __future__ import annotations

#: (model, ps, source, what is compared, ratio or MiB bound, the goal as text)
_RATIOS = [
    ("lr", "off", "generator", "job_vs_vw", 1.0, "LR, PS off: job ≥ 1.0× VW"),
    ("lr", "on", "generator", "job_vs_vw", 1.0, "LR, PS on: job ≥ 1.0× VW"),
    ("deepfm", "on", "generator", "job_vs_ceiling", 0.9, "DeepFM, PS on: job ≥ 0.9× raw-TF ceiling"),
    ("deepfm", "off", "kafka-csv", "job_vs_generator", 0.8, "DeepFM Kafka csv (Flink's source) ≥ 0.8× generator"),
    ("deepfm", "off", "kafka-csv-python", "job_vs_generator", 0.8, "DeepFM Kafka csv (Python reader) ≥ 0.8× generator"),
    ("deepfm", "off", "kafka-arrow", "job_vs_generator", 0.95, "DeepFM Kafka Arrow (Flink's source) ≥ 0.95× generator"),
    ("deepfm", "off", "kafka-arrow-python", "job_vs_generator", 0.95,
     "DeepFM Kafka Arrow (Python reader) ≥ 0.95× generator"),
]
CLIENT_MIB = 1024


def goals(rows: list[dict]) -> list[dict]:
    """One entry per goal the rows can answer: ``goal``, ``value``, ``met``, and the process bounding it
    (the role with the most CPU µs per event) where it is not met."""
    out = []
    for model, ps, path, key, bound, text in _RATIOS:
        for r in rows:
            if (r["model"], r["ps"], r["path"]) == (model, ps, path) and r.get(key) is not None:
                out.append(_entry(f"{text} ({r['mode']})", r[key], r[key] >= bound, r))
    for r in rows:
        if r["model"] == "deepfm" and r["events"] >= 1_000_000:
            peak = max(r["rss"].get("driver", (0, 0))) / 2**20
            out.append(_entry(f"DeepFM client RSS ≤ 1 GB ({r['mode']}, PS {r['ps']}, {r['path']})", peak,
                              peak <= CLIENT_MIB, r))
    return out


def _entry(goal: str, value: float, met: bool, row: dict) -> dict:
    cpu = {k: v for k, v in row["cpu_us"].items() if k != "total"}
    bound_by = None if met or not cpu else max(cpu, key=cpu.__getitem__)
    return {"goal": goal, "value": round(value, 3), "met": met, "bound_by": bound_by,
            "cpu_us": {k: round(v, 2) for k, v in cpu.items()}}


def print_goals(entries: list[dict]) -> None:
    """The goals as a Markdown table."""
    if not entries:
        return
    print("\n| goal | value | met | most CPU µs/event (where not met) |\n|---|---|---|---|")
    for g in entries:
        where = "" if g["met"] else f"{g['bound_by']} ({g['cpu_us'].get(g['bound_by'], 0):.2f})"
        print(f"| {g['goal']} | {g['value']:.2f} | {'yes' if g['met'] else '**no**'} | {where} |")
