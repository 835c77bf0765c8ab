"""``flinkdl report RUN_DIR --out auc.png``: AUC and log loss over time, for people without Grafana.

Reads ``RUN_DIR/metrics.jsonl`` (one line per report of the sink, see
:mod:`flinkdl.sinks.run_log`) and draws, against seconds since the first line: the exact
progressive AUC, the bounded-memory cumulative AUC, each window's AUC (undefined points are
gaps, never 0.5) in the top panel, and the log loss in the bottom panel.
"""

from __future__ import annotations

import json
from pathlib import Path

from flinkdl.sinks.run_log import METRICS_LOG


def load_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS_LOG
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a flinkdl run directory?")
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not rows:
        raise ValueError(f"{path} is empty")
    return rows


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def draw(run_dir: Path, out: Path) -> Path:
    """Write the PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = load_log(run_dir)
    t0 = rows[0]["t"]
    t = [r["t"] - t0 for r in rows]
    fig, (ax_auc, ax_ll) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=[2, 1])
    ax_auc.plot(t, [_nan(r.get("auc")) for r in rows], label="progressive AUC (exact)", lw=2)
    if any(r.get("auc_cumulative") is not None for r in rows):
        ax_auc.plot(t, [_nan(r.get("auc_cumulative")) for r in rows], "--", label="cumulative AUC (bounded)")
    names = sorted({name for r in rows for name in r.get("windows", {})})
    for name in names:
        ax_auc.plot(t, [_nan(r.get("windows", {}).get(name, {}).get("auc")) for r in rows], ".-", ms=3,
                    label=f"window {name}")
    ax_auc.set_ylabel("ROC AUC")
    ax_auc.grid(alpha=0.3)
    ax_auc.legend(loc="lower right", fontsize=8)
    last = rows[-1]
    ax_auc.set_title(f"{last.get('model', '?')}: {last.get('events_trained', 0):,} events trained"
                     f"{' (final)' if last.get('final') else ''}  ·  {Path(run_dir).name}")
    ax_ll.plot(t, [_nan(r.get("logloss")) for r in rows], color="tab:red", label="log loss (cumulative)")
    ax_ll.set_ylabel("log loss")
    ax_ll.set_xlabel("seconds since the first report")
    ax_ll.grid(alpha=0.3)
    ax_ll.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
