"""The cluster's Flink configuration comes from package data, not from the repository."""

import sys

import yaml

from flinkdl.cluster.standalone import LocalCluster


def test_render_conf_from_package_data(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing relative to the repository may be read
    c = LocalCluster(tmp_path / "c")
    c.render_conf()
    conf = yaml.safe_load((c.conf_dir / "config.yaml").read_text())
    assert conf["execution"]["checkpointing"]["dir"] == f"file://{tmp_path}/c/checkpoints"
    assert conf["python"]["executable"] == sys.executable
    assert "env" in conf and conf["rest"]["port"] == 8081
