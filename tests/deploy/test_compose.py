"""docker-compose.yml, offline (no Docker engine here): the Compose schema, then the cross references
a schema cannot see: depends_on targets, named volumes, bind-mounted paths, build files, host
ports, and the job the one-shot service submits (its config and every --set key)."""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from flinkdl.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_compose_file_matches_the_compose_schema():
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose_spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(COMPOSE)


def test_the_schema_check_catches_a_misspelt_key():
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose_spec.json").read_text())
    broken = {**COMPOSE, "services": {**SERVICES, "ps": {**SERVICES["ps"], "dependson": ["kafka"]}}}
    with pytest.raises(jsonschema.ValidationError, match="dependson"):
        jsonschema.Draft201909Validator(schema).validate(broken)


def test_the_stack_has_every_component():
    assert {"kafka", "ps", "jobmanager", "taskmanager", "submit", "prometheus", "grafana"} <= set(SERVICES)
    assert SERVICES["submit"]["restart"] == "no"
    for name in ("kafka", "ps", "jobmanager", "prometheus"):
        assert "healthcheck" in SERVICES[name], name


def test_depends_on_targets_exist():
    for name, svc in SERVICES.items():
        for target in svc.get("depends_on", {}):
            assert target in SERVICES, f"{name} depends on unknown service {target}"


def test_volumes_and_bind_mounts_resolve():
    declared = set(COMPOSE.get("volumes", {}))
    used = set()
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_build_context_and_dockerfile_copies_exist():
    dockerfile = ROOT / SERVICES["jobmanager"]["build"]["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_host_ports_are_unique():
    ports = [p.split(":")[0] for svc in SERVICES.values() for p in svc.get("ports", [])]
    assert len(ports) == len(set(ports)), ports


def test_submitted_job_config_and_overrides_validate():
    args = shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", SERVICES["submit"]["command"]))
    config = args[args.index("--config") + 1].replace("/opt/flinkdl/", "")
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert args[args.index("-py") + 1].replace("/opt/flinkdl/", "") == "jobs/online_learning.py"
    cfg = load_config(ROOT / config, overrides)
    assert cfg.source.kind == "kafka" and cfg.ps.enabled and cfg.metrics.enabled


def test_secrets_are_files_with_no_default():
    text = (ROOT / "docker-compose.yml").read_text()
    for name, svc in SERVICES.items():  # no secret in an environment value or on a command line
        env = svc.get("environment") or {}
        assert not any("TOKEN" in k or "PASSWORD" in k for k in (env if isinstance(env, dict) else [])), name
        assert "ps.token=" not in str(svc.get("command", "")), name
    secrets = COMPOSE["secrets"]
    assert SERVICES["ps"]["command"][-2:] == ["--token-file", "/run/secrets/ps_tokens"]
    assert "ps_tokens" in SERVICES["ps"]["secrets"] and set(secrets) == {"ps_tokens", "ps_write_token"}
    for name in ("taskmanager", "submit"):  # the workers read the token where the job config says
        assert SERVICES[name]["secrets"] == ["ps_write_token"], name
    assert "ps.token_file=/run/secrets/ps_write_token" in SERVICES["submit"]["command"]
    assert ":-" not in text, "no default values for variables (a guessable secret)"


def test_grafana_and_prometheus_provisioning_line_up():
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"])
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/flinkdl.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    prom_mounts = dict(v.split(":")[:2] for v in SERVICES["prometheus"]["volumes"] if v.startswith("."))
    assert "/etc/prometheus/prometheus.yml" in prom_mounts.values()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_compose_prometheus_config_passes_promtool():
    out = subprocess.run(["promtool", "check", "config", str(ROOT / "deploy/prometheus/compose.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
