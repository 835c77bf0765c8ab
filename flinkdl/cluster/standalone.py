"""A local standalone Flink cluster from the distribution that pyflink ships, and job lifecycle.

``flinkdl cluster start|stop|status``, ``flinkdl submit``, ``flinkdl jobs``, ``flinkdl stop`` and
``flinkdl resume`` are thin wrappers over this module: the cluster's configuration is rendered
from ``flink-config.yaml`` (package data beside this module) into ``CLUSTER_DIR/conf`` (absolute
checkpoint and savepoint directories), and jobs are submitted with ``flink run -pym
flinkdl.pipeline``, so an installed (not editable) package needs nothing from the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pyflink
import yaml

from flinkdl.cluster.rest import FlinkRest, FlinkRestError

FLINK_HOME = Path(pyflink.__file__).resolve().parent
JOB_MODULE = "flinkdl.pipeline"
_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


class LocalCluster:
    """Start/stop a standalone JobManager + TaskManager on loopback; talk to it over REST."""

    def __init__(self, root: str | Path = "runs/cluster", rest_url: str = "http://127.0.0.1:8081",
                 slots: int | None = None, rpc_port: int | None = None):
        """``slots``: task slots per TaskManager (default: flink-config.yaml's); the REST port is
        ``rest_url``'s and ``rpc_port`` the JobManager's (default: the config's), so two clusters
        can run side by side."""
        self.root = Path(root).resolve()
        self.slots, self.rpc_port = slots, rpc_port
        self.conf_dir = self.root / "conf"
        self.log_dir = self.root / "log"
        self.rest = FlinkRest(rest_url)

    @property
    def env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        # pid files of its own: start/stop-cluster.sh must never see another cluster's daemons
        return {**os.environ, "FLINK_CONF_DIR": str(self.conf_dir), "FLINK_LOG_DIR": str(self.log_dir),
                "FLINK_PID_DIR": str(self.root / "pids"), "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}

    def render_conf(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for f in (FLINK_HOME / "conf").iterdir():
            if f.name != "config.yaml":
                shutil.copy(f, self.conf_dir / f.name)
        template = resources.files("flinkdl.cluster").joinpath("flink-config.yaml").read_text()
        ours = yaml.safe_load(template.replace("${CLUSTER_DIR}", str(self.root)))
        conf = yaml.safe_load((FLINK_HOME / "conf" / "config.yaml").read_text())
        conf = {"env": conf.get("env", {}), **ours}  # keep the distribution's JVM --add-opens flags
        conf["python"] = {"executable": sys.executable, "client": {"executable": sys.executable}}
        if self.slots is not None:
            conf["taskmanager"]["numberOfTaskSlots"] = self.slots
        conf["rest"]["port"] = int(self.rest.url.rsplit(":", 1)[1])
        if self.rpc_port is not None:
            conf["jobmanager"]["rpc"]["port"] = self.rpc_port
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))

    def start(self, timeout: float = 90.0, taskmanagers: int = 1) -> dict:
        """Start the JobManager and ``taskmanagers`` TaskManager processes; returns the overview."""
        if self.rest.reachable():
            raise FlinkRestError(f"a Flink cluster already answers at {self.rest.url}")
        self.render_conf()
        subprocess.run([str(FLINK_HOME / "bin" / "start-cluster.sh")], env=self.env, check=True,
                       capture_output=True, text=True)
        for _ in range(taskmanagers - 1):
            self.add_taskmanager()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.rest.reachable() and self.rest.overview().get("taskmanagers", 0) >= taskmanagers:
                return self.rest.overview()
            time.sleep(1.0)
        raise FlinkRestError(f"cluster did not come up within {timeout:.0f}s; logs in {self.log_dir}")

    def stop(self) -> None:
        # every TaskManager in the pid file (stop-cluster.sh stops one per line of conf/workers)
        subprocess.run([str(FLINK_HOME / "bin" / "taskmanager.sh"), "stop-all"], env=self.env, check=False,
                       capture_output=True, text=True)
        subprocess.run([str(FLINK_HOME / "bin" / "stop-cluster.sh")], env=self.env, check=False,
                       capture_output=True, text=True)

    def add_taskmanager(self) -> None:
        """Start one more TaskManager (scale out, or replace a lost one) with this cluster's config."""
        subprocess.run([str(FLINK_HOME / "bin" / "taskmanager.sh"), "start"], env=self.env, check=True,
                       capture_output=True, text=True)

    def taskmanager_pids(self) -> list[int]:
        """PIDs of this cluster's TaskManager JVMs (those started with its configuration directory)."""
        import psutil

        return [p.pid for p in psutil.process_iter(["cmdline"])
                if any(a.endswith("TaskManagerRunner") for a in p.info["cmdline"] or ())
                and str(self.conf_dir) in (p.info["cmdline"] or ())]

    def status(self) -> dict | None:
        return self.rest.overview() if self.rest.reachable() else None

    def submit(self, config: str | Path, overrides: Sequence[str] = (), savepoint: str | None = None,
               parallelism: int | None = None, flink: Sequence[str] = (), serve: bool = False,
               allow_non_restored: bool = False) -> str:
        """``flink run -d [-D k=v] -pym flinkdl.pipeline --config CONFIG [-D k=v]``; returns the job id.

        ``flink`` (``key=value`` items) goes to the client's configuration and to the job's (over
        the config's ``flink:`` section); ``allow_non_restored``: skip savepoint state of operators the
        job no longer has. Relative paths in ``config`` and ``overrides`` are relative
        to the current directory. ``serve``: the serving job (``flinkdl serve``) instead of training."""
        cmd = [str(FLINK_HOME / "bin" / "flink"), "run", "-d", "-m", self.rest.url.split("//")[-1]]
        for item in flink:
            cmd.append(f"-D{item}")
        if savepoint:
            cmd += ["-s", savepoint, *(["--allowNonRestoredState"] if allow_non_restored else [])]
        if parallelism:
            cmd += ["-p", str(parallelism)]
        cmd += ["-pyexec", sys.executable, "-pyclientexec", sys.executable, "-pym", JOB_MODULE,
                "--config", str(Path(config).resolve()), *(["--serve"] if serve else [])]
        for o in overrides:
            cmd += ["--set", o]
        for item in flink:
            cmd += ["-D", item]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        m = _JOB_ID.search(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not m:
            raise FlinkRestError(f"flink run failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
        return m.group(1)
