"""Shared helpers of the deploy tests: the dashboard's PromQL, with Grafana variables filled in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "flinkdl.json"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

#: What Grafana substitutes: "All" selections become ``.*``, the rate interval a concrete range.
GRAFANA_VARS = {"$__rate_interval": "30s", "$job": ".*", "$model": ".*"}


def panel_queries(rate_interval: str = "30s") -> list[tuple[str, str]]:
    """``(panel title + refId, PromQL)`` of every target of every panel, variables substituted."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for t in panel["targets"]:
            expr = t["expr"]
            for k, v in {**GRAFANA_VARS, "$__rate_interval": rate_interval}.items():
                expr = expr.replace(k, v)
            out.append((f"{panel['title']} [{t['refId']}]", expr))
    return out
