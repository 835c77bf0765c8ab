"""Offline checks of deploy/: promtool on the scrape config, the rules and their unit tests; the
Grafana dashboard against a dashboard JSON schema; every panel's PromQL parsed by promtool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy.promql import DASHBOARD, DEPLOY, PROMTOOL, panel_queries

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install -y prometheus")


def promtool(*args: str, cwd: Path | None = None) -> str:
    r = subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@needs_promtool
def test_prometheus_config_and_rules_check() -> None:
    out = promtool("check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus")
    assert "SUCCESS: 5 rules found" in out


@needs_promtool
def test_alert_rules_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "tests/flinkdl_test.yml", cwd=DEPLOY / "prometheus")


def test_dashboard_matches_grafana_schema() -> None:
    schema = json.loads((DEPLOY / "grafana" / "dashboard.schema.json").read_text())
    dash = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dash, schema)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for needed in ("auc per window", "cumulative auc", "log loss", "calibration", "throughput",
                   "parameter server lag", "backpressure", "checkpoint duration"):
        assert needed in titles


def test_schema_rejects_a_broken_dashboard() -> None:
    schema = json.loads((DEPLOY / "grafana" / "dashboard.schema.json").read_text())
    dash = json.loads(DASHBOARD.read_text())
    del dash["panels"][0]["targets"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dash, schema)


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    dash = json.loads(DASHBOARD.read_text())
    current = next(v for v in dash["templating"]["list"] if v["type"] == "datasource")["current"]["value"]
    assert current == uid and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/flinkdl.yml").read_text())
    assert prov["providers"][0]["type"] == "file"


@needs_promtool
def test_every_panel_query_parses(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel:{i}", "expr": expr} for i, (_, expr) in enumerate(panel_queries())]}]}
    f = tmp_path / "panels.yml"
    f.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(rules['groups'][0]['rules'])} rules found" in promtool("check", "rules", str(f))
