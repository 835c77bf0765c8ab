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


def test_render_conf_with_its_own_ports_slots_and_pid_files(tmp_path) -> None:
    """Two clusters side by side (the p=2 fault test): REST and RPC ports, slots, pid directory."""
    c = LocalCluster(tmp_path / "c", "http://127.0.0.1:18081", slots=1, rpc_port=16123)
    c.render_conf()
    conf = yaml.safe_load((c.conf_dir / "config.yaml").read_text())
    assert conf["rest"]["port"] == 18081 and conf["jobmanager"]["rpc"]["port"] == 16123
    assert conf["taskmanager"]["numberOfTaskSlots"] == 1
    assert c.env["FLINK_PID_DIR"] == str(tmp_path / "c" / "pids")
