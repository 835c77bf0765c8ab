"""Offline checks of deploy/: promtool on the scrape config, the rules and their unit tests; the
Grafana dashboard against a dashboard JSON schema; every panel's PromQL parsed by promtool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from flinkdl.telemetry import names
from tests.deploy.promql import DASHBOARD, DEPLOY, PROMTOOL, panel_queries

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install -y prometheus")


def promtool(*args: str, cwd: Path | None = None) -> str:
    r = subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@needs_promtool
def test_prometheus_config_and_rules_check() -> None:
    out = promtool("check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus")
    assert "SUCCESS: 6 rules found" in out


@needs_promtool
def test_alert_rules_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "tests/flinkdl_test.yml", cwd=DEPLOY / "prometheus")


def test_every_alert_rule_has_a_unit_test_and_uses_exported_names() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/flinkdl.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((DEPLOY / "prometheus/tests/flinkdl_test.yml").read_text())["tests"]
    tested = {a["alertname"] for t in tests for a in t.get("alert_rule_test", [])}
    assert {r["alert"] for r in rules} == tested
    stalled = next(r["expr"] for r in rules if r["alert"] == "FlinkdlTrainingStalled")
    assert names.EVENTS_TRAINED in stalled and names.EVENTS_SCORED in stalled  # scoring only is not stalled
    assert names.MODEL_AGE_SECONDS in next(r["expr"] for r in rules if r["alert"] == "FlinkdlModelStale")


def test_dashboard_matches_grafana_schema() -> None:
    schema = json.loads((DEPLOY / "grafana" / "dashboard.schema.json").read_text())
    dash = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dash, schema)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for needed in ("auc per window", "cumulative auc", "log loss", "calibration", "throughput",
                   "parameter server lag", "backpressure", "checkpoint duration",
                   "scoring latency p50 / p99", "model age", "refresh lag"):
        assert needed in titles
    queries = " ".join(expr for _, expr in panel_queries())
    for metric in (names.SCORING_LATENCY_SECONDS, names.MODEL_AGE_SECONDS, names.SERVING_REFRESH_LAG_SECONDS):
        assert f"{metric}_bucket" in queries  # the histograms flinkdl exports, by their names
    for metric in (names.SETTLED_AUC, names.SETTLED_LOGLOSS, names.SETTLED_CALIBRATION, names.SETTLED_PENDING):
        assert metric + "{" in queries  # the feedback job's settled-label gauges
    assert f"{names.FEEDBACK_LATE}_total" in queries and f"{names.SETTLED_EVENTS}_total" in queries


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
