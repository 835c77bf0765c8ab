"""deploy/k8s/, offline: every manifest against its schema (the Flink Kubernetes Operator's FlinkDeployment
CRD, Kubernetes' own strict schemas), then what a schema cannot see: the job's command line and config,
the PS address, Secret references with no literal secret, volumes, selectors, Prometheus annotations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flinkdl.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "deploy" / "schemas"
DOCS = [d for p in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
BY_KIND = {d["kind"]: d for d in DOCS}
K8S = json.loads((SCHEMAS / "k8s-v1.34-strict.json").read_text())
CORE = {("apps/v1", "StatefulSet"): "io.k8s.api.apps.v1.StatefulSet",
        ("v1", "Service"): "io.k8s.api.core.v1.Service",
        ("v1", "PersistentVolumeClaim"): "io.k8s.api.core.v1.PersistentVolumeClaim"}


def strict(schema: Any) -> Any:
    """The CRD schema as ``kubectl apply --validate=strict`` reads it: unknown fields are errors (the API
    server would otherwise drop them silently), except where the CRD keeps unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_validator() -> jsonschema.protocols.Validator:
    schema = strict(json.loads((SCHEMAS / "flinkdeployment-v1beta1.json").read_text()))
    schema["properties"].update(  # implicit in every CRD; metadata is checked by the API server itself
        apiVersion={"const": "flink.apache.org/v1beta1"}, kind={"const": "FlinkDeployment"},
        metadata={"type": "object"})
    return jsonschema.Draft7Validator(schema)


def core_validator(doc: dict[str, Any]) -> jsonschema.protocols.Validator:
    name = CORE[(doc["apiVersion"], doc["kind"])]
    return jsonschema.Draft202012Validator({**K8S, "$ref": f"#/$defs/{name}"})


def test_every_manifest_is_a_known_kind() -> None:
    kinds = sorted(d["kind"] for d in DOCS)
    assert kinds == ["FlinkDeployment", "PersistentVolumeClaim", "Service", "StatefulSet"]
    assert "Secret" not in kinds  # referenced, never written down


def test_flinkdeployment_matches_the_operator_crd() -> None:
    fd = BY_KIND["FlinkDeployment"]
    assert fd["apiVersion"] == "flink.apache.org/v1beta1"
    crd_validator().validate(fd)


@pytest.mark.parametrize("kind", ["StatefulSet", "Service", "PersistentVolumeClaim"])
def test_core_kinds_match_kubernetes_schemas(kind: str) -> None:
    doc = BY_KIND[kind]
    core_validator(doc).validate(doc)


def test_the_schemas_catch_a_misspelt_key() -> None:
    fd = json.loads(json.dumps(BY_KIND["FlinkDeployment"]))
    fd["spec"]["job"]["paralelism"] = 2
    with pytest.raises(jsonschema.ValidationError, match="paralelism"):
        crd_validator().validate(fd)
    ss = json.loads(json.dumps(BY_KIND["StatefulSet"]))
    ss["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(jsonschema.ValidationError, match="volumeMount"):
        core_validator(ss).validate(ss)
    fd = json.loads(json.dumps(BY_KIND["FlinkDeployment"]))
    fd["spec"]["flinkVersion"] = "v2_9"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator().validate(fd)


def _job_args() -> list[str]:
    return BY_KIND["FlinkDeployment"]["spec"]["job"]["args"]


def _sets() -> list[str]:
    args = _job_args()
    return [args[i + 1] for i, a in enumerate(args) if a == "--set"]


def test_flink_version_and_entry_point_match_the_package() -> None:
    import pyflink.version

    spec = BY_KIND["FlinkDeployment"]["spec"]
    major, minor = pyflink.version.__version__.split(".")[:2]
    assert spec["flinkVersion"] == f"v{major}_{minor}"
    assert spec["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{pyflink.version.__version__}.jar"
    assert (Path(pyflink.__file__).parent / "opt" / f"flink-python-{pyflink.version.__version__}.jar").is_file()
    args = _job_args()
    assert args[args.index("-pym") + 1] == "flinkdl.pipeline"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert spec["image"] == compose["services"]["jobmanager"]["image"]
    assert spec["flinkConfiguration"]["kubernetes.entry.path"] == "/entrypoint.sh"


def test_the_submitted_config_and_overrides_validate() -> None:
    args = _job_args()
    cfg = load_config(ROOT / args[args.index("--config") + 1].replace("/opt/flinkdl/", ""), _sets())
    assert cfg.source.kind == "kafka" and cfg.ps.enabled and not cfg.ps.start_local and cfg.metrics.enabled


def test_ps_address_is_the_ps_service() -> None:
    cfg_address = next(s.split("=", 1)[1] for s in _sets() if s.startswith("ps.address="))
    svc = BY_KIND["Service"]
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert cfg_address == f"grpc://{svc['metadata']['name']}:{port}"
    ss = BY_KIND["StatefulSet"]
    assert ss["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["selector"].items() <= ss["spec"]["template"]["metadata"]["labels"].items()
    assert ss["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


def _secret_file(pod: dict[str, Any], path: str) -> str:
    """The Secret that provides ``path`` in ``pod``'s first container; fails if no volume does."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    for m in pod["containers"][0]["volumeMounts"]:
        vol = volumes.get(m["name"], {})
        if "secret" in vol and path.startswith(m["mountPath"] + "/"):
            assert any(i["path"] == path[len(m["mountPath"]) + 1:] for i in vol["secret"]["items"])
            return str(vol["secret"]["secretName"])
    raise AssertionError(f"no Secret volume provides {path}")


def test_tokens_come_from_a_secret_reference_only() -> None:
    token_file = next(s.split("=", 1)[1] for s in _sets() if s.startswith("ps.token_file="))
    job_secret = _secret_file(BY_KIND["FlinkDeployment"]["spec"]["podTemplate"]["spec"], token_file)
    ps_pod = BY_KIND["StatefulSet"]["spec"]["template"]["spec"]
    args = ps_pod["containers"][0]["args"]
    assert _secret_file(ps_pod, args[args.index("--token-file") + 1]) == job_secret
    text = "\n".join((ROOT / "deploy" / "k8s" / p).read_text() for p in ("flinkdeployment.yaml", "ps.yaml"))
    assert "ps.token=" not in text and "--token " not in text and "FLINKDL_PS" not in text


def test_ps_keeps_its_versions_on_a_claimed_volume() -> None:
    ss = BY_KIND["StatefulSet"]["spec"]
    args = ss["template"]["spec"]["containers"][0]["args"]
    data = args[args.index("--checkpoint-dir") + 1]
    mount = next(m for m in ss["template"]["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == data)
    assert mount["name"] in {t["metadata"]["name"] for t in ss["volumeClaimTemplates"]}


def test_job_volume_claim_exists_and_holds_checkpoints() -> None:
    pod = BY_KIND["FlinkDeployment"]["spec"]["podTemplate"]["spec"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {BY_KIND["PersistentVolumeClaim"]["metadata"]["name"]}
    conf = BY_KIND["FlinkDeployment"]["spec"]["flinkConfiguration"]
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]]
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        assert any(conf[key].startswith(f"file://{m}/") for m in mounts), key


def test_prometheus_scrape_annotations_name_served_ports() -> None:
    fd = BY_KIND["FlinkDeployment"]["spec"]
    ann = fd["podTemplate"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert ann["prometheus.io/port"] == fd["flinkConfiguration"]["metrics.reporter.prom.port"]
    ps = BY_KIND["StatefulSet"]["spec"]["template"]
    args = ps["spec"]["containers"][0]["args"]
    assert ps["metadata"]["annotations"]["prometheus.io/port"] == args[args.index("--metrics-port") + 1]
    ports = {p["containerPort"] for p in ps["spec"]["containers"][0]["ports"]}
    assert int(ps["metadata"]["annotations"]["prometheus.io/port"]) in ports
