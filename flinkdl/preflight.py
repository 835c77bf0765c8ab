"""Checks made before Flink starts, so a wrong address or path fails in seconds with one line.

Each check raises :class:`PreflightError` naming the config key, its value and what was tried;
the CLI prints it as one line and exits with status 2.

>>> str(PreflightError("ps.address", "grpc://h:1", "nothing answers"))
"ps.address = 'grpc://h:1': nothing answers"
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from flinkdl.config.schema import JobConfig, KafkaSourceConfig, PsConfig

#: Seconds a TCP connect or a broker metadata request may take.
CONNECT_TIMEOUT_S = 3.0
METADATA_TIMEOUT_S = 10.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class PreflightError(RuntimeError):
    """A config value that cannot work: ``key``, ``value`` and what was tried."""

    def __init__(self, key: str, value: object, tried: str) -> None:
        super().__init__(f"{key} = {str(value)!r}: {tried}")
        self.key, self.value, self.tried = key, value, tried


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``scheme://host:port`` or ``[v6]:port`` → ``(host, port)``."""
    url = urlparse(address if "://" in address else f"tcp://{address}")
    return url.hostname or "", url.port or default_port


def tcp_error(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None if ``host:port`` accepts a TCP connection within ``timeout``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"TCP connect to {host}:{port} timed out after {timeout:.0f} s"
    except OSError as e:
        return f"TCP connect to {host}:{port} failed: {e.strerror or e}"


def check_kafka(key: str, bootstrap_servers: str, properties: dict[str, str] | None = None) -> None:
    """A broker of ``bootstrap_servers`` accepts a connection and answers a metadata request."""
    tried = []
    for server in (s.strip() for s in bootstrap_servers.split(",") if s.strip()):
        host, port = host_port(server, 9092)
        why = tcp_error(host, port)
        if why is None:
            break
        tried.append(why)
    else:
        raise PreflightError(key, bootstrap_servers, "no Kafka broker answers (" + "; ".join(tried) + ")")
    if (properties or {}).get("security.protocol", "PLAINTEXT").upper() != "PLAINTEXT":
        return  # authenticated clusters: Flink's own client reports its errors
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": int(METADATA_TIMEOUT_S * 1000)})
    try:
        admin.list_topics(timeout=METADATA_TIMEOUT_S)
    except Exception as e:  # KafkaException: the listener is not a Kafka broker, or it advertises a bad address
        raise PreflightError(key, bootstrap_servers, f"TCP connects, but a metadata request (list topics, "
                             f"{METADATA_TIMEOUT_S:.0f} s) failed: {str(e).splitlines()[0]}") from None


def check_ps(ps: PsConfig, may_start: bool | None = None) -> None:
    """A parameter server answers at ``ps.address``, unless ``flinkdl run`` may start one there
    (``may_start``: default ``ps.start_local``; ``flinkdl serve`` never starts one)."""
    from flinkdl.ps.client import PsClient, addresses_of

    for address in addresses_of(ps.address):  # one server, or each shard of a sharded one
        host, port = host_port(address, 8815)
        why = tcp_error(host, port)
        if why is None:
            continue
        if (ps.start_local if may_start is None else may_start) and host in _LOOPBACK:
            return  # flinkdl run starts it
        hint = "start one with `flinkdl ps serve`" + ("" if ps.start_local or may_start is not None
                                                       else " or set ps.start_local: true")
        raise PreflightError("ps.address", ps.address, f"no parameter server answers ({why}); {hint}")

    try:
        PsClient.from_config(ps, connect_timeout_s=0).close()
    except Exception as e:  # a wrong token, TLS mismatch, or another service on that port
        raise PreflightError("ps.address", ps.address, "TCP connects, but the parameter server's health call "
                             f"failed: {str(e).splitlines()[0]}") from None


def check_directory(key: str, path: Path) -> None:
    """``path`` is an existing directory."""
    if not path.exists():
        raise PreflightError(key, path, f"no such directory ({path.resolve()}); create it or fix the path")
    if not path.is_dir():
        raise PreflightError(key, path, f"{path.resolve()} is not a directory")


def check_writable(key: str, path: Path) -> None:
    """``path`` exists or can be created, and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".flinkdl-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PreflightError(key, path, f"not writable: creating a file in {path.resolve()} failed: "
                             f"{e.strerror or e}") from None


def check_flink(rest_url: str) -> None:
    """A Flink REST endpoint answers at ``rest_url`` (``--rest``)."""
    from flinkdl.cluster.rest import FlinkRest, FlinkRestError

    host, port = host_port(rest_url, 8081)
    why = tcp_error(host, port)
    if why is None:
        try:
            FlinkRest(rest_url, timeout=CONNECT_TIMEOUT_S * 2).overview()
            return
        except FlinkRestError as e:
            why = f"GET /overview failed: {e}"
    raise PreflightError("--rest", rest_url, f"no Flink cluster answers ({why}); start one with "
                         "`flinkdl cluster start` or pass --rest")


def check_side_tables(cfg: JobConfig) -> None:
    """Every ``enrich`` file reads and has its key and columns; every side topic's broker answers."""
    from flinkdl.features.enrich import FileTable

    for i, t in enumerate(cfg.enrich):
        if t.kafka is not None:
            check_kafka(f"enrich[{i}].kafka.bootstrap_servers", t.kafka.bootstrap_servers, t.kafka.properties)
            continue
        try:
            FileTable(t)
        except ValueError as e:
            raise PreflightError(f"enrich[{i}].path", t.path, str(e.__cause__ or e)) from None


def _kafka_source(k: KafkaSourceConfig) -> None:
    check_kafka("source.kafka.bootstrap_servers", k.bootstrap_servers, k.properties)


def check_run(cfg: JobConfig) -> None:
    """Everything ``flinkdl run`` needs from outside the process, checked before Flink starts."""
    if cfg.source.kind == "directory" and cfg.source.directory is not None:
        check_directory("source.directory.path", cfg.source.directory.path)
    if cfg.job.checkpoint_dir is not None:
        check_writable("job.checkpoint_dir", cfg.job.checkpoint_dir)
    check_side_tables(cfg)
    if cfg.source.kind == "kafka" and cfg.source.kafka is not None:
        _kafka_source(cfg.source.kafka)
    sink = cfg.sinks.kafka
    if sink is not None and sink.bootstrap_servers is not None:
        check_kafka("sinks.kafka.bootstrap_servers", sink.bootstrap_servers, sink.properties)
    if cfg.ps.enabled:
        check_ps(cfg.ps)


def _ps_has_a_version(ps: PsConfig) -> None:
    check_ps(ps, may_start=False)
    from flinkdl.ps.client import PsClient

    with PsClient.from_config(ps, connect_timeout_s=0) as client:
        if not client.versions():
            raise PreflightError("ps.address", ps.address, "the parameter server has no committed version "
                                 "to serve (train with ps.enabled first, or give it its --checkpoint-dir)")


def check_serve(cfg: JobConfig) -> None:
    """What ``flinkdl serve`` needs: a parameter server (never a local one started for it) that has a
    committed version to serve (with ``serving.source: published``: a published version instead), and the
    request topic's broker."""
    if cfg.serving.source == "published":
        from flinkdl.publish.layout import latest

        if latest(cfg.publish.dir) is None:
            raise PreflightError("publish.dir", str(cfg.publish.dir), "no published version to serve (train with "
                                 "publish.enabled first; docs/PUBLISH.md)")
    else:
        _ps_has_a_version(cfg.ps)
    if cfg.source.kafka is not None:
        _kafka_source(cfg.source.kafka)
    sink = cfg.sinks.kafka
    if sink is not None and sink.bootstrap_servers is not None:
        check_kafka("sinks.kafka.bootstrap_servers", sink.bootstrap_servers, sink.properties)
