"""Flink's Kafka connector jars: where they come from and where they live.

PyFlink ships no Kafka connector. Here the two jars (``flink-connector-kafka`` 4.0.1-2.0 and
``kafka-clients`` 3.9.1, which work with Flink 2.3) are extracted from the PyPI wheel
``shigawire-apache-flink-libraries==2.0.0.post1``: ``pip download --no-deps`` into a cache, then
only those two files are unzipped into ``.venv/flink-jars/``. The wheel itself is never installed
and the jars are never committed. In a container image the same jars come from Maven:
``org.apache.flink:flink-connector-kafka:4.0.1-2.0`` and ``org.apache.kafka:kafka-clients:3.9.1``.

``python -m flinkdl.devtools.connectors`` (called by ``scripts/setup.sh``) fetches them;
``FLINKDL_JARS`` names another directory holding them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")
MAVEN = ("org.apache.flink:flink-connector-kafka:4.0.1-2.0", "org.apache.kafka:kafka-clients:3.9.1")


def jar_dir() -> Path:
    """``$FLINKDL_JARS`` or ``<venv>/flink-jars``."""
    env = os.environ.get("FLINKDL_JARS")
    return Path(env) if env else Path(sys.prefix) / "flink-jars"


def kafka_jars(fetch: bool = False) -> list[Path]:
    """Paths of the two Kafka jars; with ``fetch`` obtain them if missing, else raise."""
    d = jar_dir()
    paths = [d / j for j in JARS]
    if all(p.is_file() for p in paths):
        return paths
    if not fetch:
        raise FileNotFoundError(f"Kafka connector jars not found in {d}: run scripts/setup.sh "
                                "(or `python -m flinkdl.devtools.connectors`), or set FLINKDL_JARS")
    cache = d / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("shigawire_apache_flink_libraries-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(cache)],
                       check=True)
        wheels = sorted(cache.glob("shigawire_apache_flink_libraries-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        for j in JARS:
            tmp = d / f".{j}.tmp"
            tmp.write_bytes(z.read(f"pyflink/lib/{j}"))
            tmp.rename(d / j)
    for w in wheels:  # 90 MB: keep only the two jars
        w.unlink()
    return paths


if __name__ == "__main__":
    for p in kafka_jars(fetch=True):
        print(p)
