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


DOCKERFILE = (ROOT / "deploy" / "flink" / "Dockerfile").read_text()
FLINKDL_IMAGE = {n for n, s in SERVICES.items() if s.get("image") == SERVICES["jobmanager"]["image"]}
ONE_SHOT = {"submit", "topics"}


def _dockerfile_env() -> dict[str, str]:
    m = re.search(r"^ENV (.*?)(?=^\S)", DOCKERFILE, re.M | re.S)
    assert m, "no ENV block"
    return dict(kv.split("=", 1) for kv in shlex.split(m.group(1).replace("\\\n", " ")))


def test_image_is_python_311_with_the_pinned_pyflink_distribution():
    import pyflink.version

    base = re.search(r"^ARG BASE=(\S+)", DOCKERFILE, re.M)
    assert base and base.group(1).startswith("python:3.11")
    assert "FROM flink:" not in DOCKERFILE  # the cluster is the wheel's distribution, not another Flink
    pin = re.search(r'"apache-flink==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin and pin.group(1) == pyflink.version.__version__ and pin.group(1).startswith("2.3")
    assert "import pyflink" in DOCKERFILE and "/opt/flink" in DOCKERFILE
    assert _dockerfile_env()["FLINK_HOME"] == "/opt/flink"


def test_connector_jars_are_where_the_job_looks():
    from flinkdl.devtools.connectors import JARS

    jars = _dockerfile_env()["FLINKDL_JARS"]
    added = re.findall(r"^ADD \S+\s*\\?\s*(\S+)$", DOCKERFILE, re.M)
    assert sorted(added) == sorted(f"{jars}/{j}" for j in JARS)


def test_volume_mount_points_are_created_and_owned_in_the_image():
    made = re.search(r"mkdir -p ([^&]+)", DOCKERFILE.split("VOLUME")[0].split("chown")[0].rsplit("RUN", 1)[1])
    chown = re.search(r"chown -R flink:flink ([^\n&]+)", DOCKERFILE)
    assert made and chown
    for name in FLINKDL_IMAGE:
        for vol in SERVICES[name].get("volumes", []):
            target = vol.split(":")[1]
            assert any(d == target or d.startswith(target + "/") for d in made.group(1).split()), \
                f"{name}: {target} not created in the image"
            assert target in chown.group(1).split(), f"{name}: {target} not owned by flink"
    assert re.search(r"^USER flink$", DOCKERFILE, re.M)


def test_entrypoint_merges_flink_properties(tmp_path):
    import pyflink

    shutil.copy(Path(pyflink.__file__).parent / "conf" / "config.yaml", tmp_path / "config.yaml")
    script = (ROOT / "deploy/flink/entrypoint.sh").read_text()
    body = script[script.index("conf() {"):script.index("\ncase ")] + "\nconf\n"
    import sys

    props = SERVICES["jobmanager"]["environment"]["FLINK_PROPERTIES"]
    env = {"FLINK_CONF_DIR": str(tmp_path), "FLINK_PROPERTIES": props,
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    subprocess.run(["sh", "-c", body], env=env, check=True)
    conf = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert conf["jobmanager.rpc.address"] == "jobmanager" and conf["taskmanager.bind-host"] == "0.0.0.0"
    assert conf["execution.checkpointing.dir"] == "file:///flink-data/checkpoints"
    assert "taskmanager.host" not in conf and "--add-opens" in conf["env.java.opts.all"]


def test_grafana_datasource_is_the_prometheus_service():
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    port = SERVICES["prometheus"]["ports"][0].split(":")[-1]
    assert ds["datasources"][0]["url"] == f"http://prometheus:{port}"


def test_a_one_shot_service_creates_the_jobs_topics():
    args = shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", SERVICES["submit"]["command"]))
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    cfg = load_config(ROOT / args[args.index("--config") + 1].replace("/opt/flinkdl/", ""), overrides)
    script = SERVICES["topics"]["command"][0]
    created = {t.split(":")[0] for t in re.search(r"for t in ([^;]+);", script).group(1).split()}
    needed = {cfg.source.kafka.topic, cfg.source.kafka.dead_letter_topic, cfg.sinks.kafka.topic}
    assert needed <= created
    assert "--if-not-exists" in script and SERVICES["topics"]["restart"] == "no"
    assert SERVICES["submit"]["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
    assert SERVICES["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_kafka_has_a_listener_for_host_clients():
    env = SERVICES["kafka"]["environment"]
    advertised = dict(a.split("://") for a in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host, port = advertised["HOST"].split(":")
    assert host == "localhost" and f"{port}:{port}" in SERVICES["kafka"]["ports"]
    assert "HOST:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert f"HOST://:{port}" in env["KAFKA_LISTENERS"]


def test_long_running_services_restart_and_one_shots_do_not():
    for name, svc in SERVICES.items():
        expected = {"no"} if name in ONE_SHOT else {"unless-stopped", "always"}
        assert svc.get("restart") in expected, name


def test_the_local_override_swaps_images_and_networking_only_where_it_must():
    """deploy/test/docker-compose.local.yml (make test-deploy) overrides services of the stack, never adds one."""
    local = yaml.safe_load((ROOT / "deploy/test/docker-compose.local.yml").read_text())
    assert set(local["services"]) <= set(SERVICES)
    assert set(local["secrets"]) == set(COMPOSE["secrets"])
    for name, svc in local["services"].items():
        if name == "grafana":
            assert svc == {"profiles": ["not-runnable-here"]}
            continue
        assert svc["network_mode"] == "host" and svc["image"] == "flinkdl/flink:local", name
    submit = " ".join(local["services"]["submit"]["command"].split())
    assert "-py /opt/flinkdl/jobs/online_learning.py --config /opt/flinkdl/jobs/click_stream_kafka.yaml" in submit
    assert "ps.token_file=/run/secrets/ps_write_token" in submit
