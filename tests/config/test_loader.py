from pathlib import Path

import pytest

from flinkdl.config.loader import ConfigError, load_config

JOBS = Path(__file__).resolve().parents[2] / "jobs"


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    load_config(path)


def test_set_overrides_dotted_keys_with_yaml_values():
    cfg = load_config(JOBS / "click_stream.yaml", ["model.name=lr", "model.hidden=[8, 4]", "job.parallelism=2"])
    assert (cfg.model.name, cfg.model.hidden, cfg.job.parallelism) == ("lr", [8, 4], 2)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.bogus=1", "model.bogus: unknown key (value 1)"),
        ("source.kind=pulsar", "source.kind = 'pulsar': Input should be 'generator', 'directory' or 'kafka'"),
        ("source.kind=kafka", "source.kafka is missing"),
        ("source.kafka={bootstrap_servers: 'h:1', topic: t}", "format 'csv' needs the column names"),
        ("job.parallelism=0", "job.parallelism = 0: Input should be greater than or equal to 1"),
        ("features.hash_bits=40", "features.hash_bits = 40: Input should be less than or equal to 31"),
        ("features.crosses=[[C1, nope]]", "features.crosses: 'nope' is not a categorical field"),
        ("source.kind=directory", "source.directory is missing"),
    ],
)
def test_bad_values_name_key_value_and_expectation(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config(JOBS / "click_stream.yaml", [override])
    assert expected in str(e.value)


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["model.name"])
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")


def test_set_keeps_a_dotted_property_name_whole_and_as_a_string() -> None:
    cfg = load_config(JOBS / "click_stream_kafka.yaml", [
        "source.kafka.properties.fetch.max.wait.ms=10", "sinks.kafka.properties.enable.idempotence=true",
        "flink.execution.buffer-timeout.interval=5ms"])
    assert cfg.source.kafka is not None and cfg.source.kafka.properties["fetch.max.wait.ms"] == "10"
    assert cfg.sinks.kafka is not None and cfg.sinks.kafka.properties["enable.idempotence"] == "true"
    assert cfg.flink["execution.buffer-timeout.interval"] == "5ms"


def test_yaml_on_no_and_yes_are_strings_and_booleans_still_take_them(tmp_path) -> None:
    (tmp_path / "u.tsv").write_text("user\tage\n1\t30\n")
    (tmp_path / "job.yaml").write_text(f"""
source: {{kind: directory, directory: {{path: in, columns: [uid, rating], format: csv}}}}
enrich: [{{path: {tmp_path / 'u.tsv'}, key: user, on: uid, columns: [age]}}]
features: {{event_id: null, label: {{column: rating, threshold: 4}}, categorical: [uid, age, no]}}
job: {{exactly_once: yes, checkpoint_interval_s: 5}}
""")
    cfg = load_config(tmp_path / "job.yaml", ["ps.enabled=on"])
    assert cfg.enrich[0].on == "uid" and cfg.features.categorical[2].name == "no"  # not True, not False
    assert cfg.job.exactly_once is True and cfg.ps.enabled is True
