"""Load a YAML job config, apply ``--set key=value`` overrides, validate it up front.

>>> cfg = load_config(None, ["model.name=lr", "source.generator.events=1000"])
>>> cfg.model.name, cfg.source.generator.events
('lr', 1000)
>>> try:
...     load_config(None, ["model.embedding_dim=zero"])
... except ConfigError as e:
...     print(e)
model.embedding_dim = 'zero': Input should be a valid integer, unable to parse string as an integer

Secrets come from the environment, never from the command line: a string value ``${NAME}`` in the
YAML file is replaced by the environment variable ``NAME``, and ``--set`` refuses secret keys.

>>> import os; os.environ["DOCTEST_TOKEN"] = "s3cret"
>>> interpolate({"ps": {"token": "${DOCTEST_TOKEN}"}}, os.environ)
{'ps': {'token': 's3cret'}}
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flinkdl.config.schema import CRITEO_LIKE_FEATURES, JobConfig


class ConfigError(ValueError):
    """A config that cannot run: names the dotted key, the value given and what was expected."""


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. PyYAML's 1.1 reading made a side table's ``on:`` key the
    boolean True (and ``no``, ``off``, ``y`` too); a boolean setting still takes yes/on (pydantic)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader


#: Keys whose values are secrets (matched against the dotted key's last part).
_SECRET = re.compile(r"(^|[._])(token|password|secret)$|jaas", re.IGNORECASE)


def is_secret(key: str) -> bool:
    """Whether a dotted config key holds a secret (``ps.token``, ``...properties.sasl.password``...).

    >>> is_secret("ps.token"), is_secret("source.kafka.properties.sasl.jaas.config"), is_secret("ps.address")
    (True, True, False)
    """
    return bool(_SECRET.search(key))


def interpolate(node: Any, environ: Mapping[str, str], key: str = "") -> Any:
    """Replace every ``${NAME}`` in the string values of ``node`` by ``environ[NAME]``."""
    if isinstance(node, dict):
        return {k: interpolate(v, environ, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, environ, f"{key}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in environ:
            raise ConfigError(f"{key} = {node!r}: environment variable {m.group(1)} is not set")
        return environ[m.group(1)]

    return _VAR.sub(value, node)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` → ``(["a", "b"], 3)``; the value is parsed as YAML (numbers, lists, null...)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, e.g. model.name=lr")
    try:
        value = _yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


#: Mappings whose keys are dotted names themselves (Kafka client properties, Flink options).
_DOTTED_KEYS = ("properties",)


def dotted_path(path: list[str]) -> list[str]:
    """``path`` with everything after a mapping of dotted names (``...properties``, top-level ``flink``)
    kept as one key.

    >>> dotted_path("source.kafka.properties.fetch.max.wait.ms".split("."))
    ['source', 'kafka', 'properties', 'fetch.max.wait.ms']
    >>> dotted_path("flink.execution.buffer-timeout.interval".split("."))
    ['flink', 'execution.buffer-timeout.interval']
    """
    for i, part in enumerate(path[:-1]):
        if part in _DOTTED_KEYS or (i == 0 and part == "flink"):
            return [*path[:i + 1], ".".join(path[i + 1:])]
    return path


def apply_overrides(doc: dict, overrides: list[str]) -> dict:
    for item in overrides:
        path, value = parse_override(item)
        path = dotted_path(path)
        if len(path) > 1 and path[-2] in _DOTTED_KEYS and isinstance(value, (bool, int, float)):
            # a client property is a string: `=10` means "10", `=true` means "true"
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if is_secret(".".join(path)):
            raise ConfigError(f"--set {'.'.join(path)}=...: a secret on the command line is visible in every process "
                              f"listing; write `{path[-1]}: ${{ENV_VAR}}` in the config file instead")
        node = doc
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return doc


def _format(err: ValidationError, doc: dict) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (value {e['input']!r})")
        elif e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        elif e["loc"] and not isinstance(e["input"], dict):
            lines.append(f"{key} = {e['input']!r}: {msg}")
        else:
            lines.append(msg if msg.startswith(key) else f"{key}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> JobConfig:
    """Read ``path`` (YAML; None = embedded defaults), apply overrides, validate."""
    doc: dict = {"features": copy.deepcopy(CRITEO_LIKE_FEATURES)}
    if path is not None:
        try:
            doc = _yaml(Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError(f"config file {str(path)!r}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"config file {str(path)!r}: expected a mapping at the top, got {type(doc).__name__}")
    doc = interpolate(doc, os.environ)
    apply_overrides(doc, overrides or [])
    try:
        return JobConfig.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(_format(e, doc)) from None


def redact(node: Any, key: str = "") -> Any:
    """``node`` with every secret value replaced by ``"***"``."""
    if isinstance(node, dict):
        return {k: redact(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    return "***" if node is not None and is_secret(key) else node


def dump_config(cfg: JobConfig) -> str:
    """The fully resolved config as YAML (what a job actually ran with), secrets redacted."""
    return yaml.safe_dump(redact(cfg.model_dump(mode="json")), sort_keys=False)
