#!/usr/bin/env bash
# `make run`: Kafka in and out end to end with a local broker started (and stopped) for the user.
# 1. start tansu on a free loopback port  2. produce the built-in click stream (EVENTS events)
# 3. run jobs/click_stream_kafka.yaml: topic `clicks` → DeepFM → topic `predictions`  4. stop the broker.
# With a real cluster, skip this script: flinkdl run jobs/click_stream_kafka.yaml --set source.kafka.bootstrap_servers=...
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
STATE=runs/broker.json
BIN=.venv/bin
"$BIN/flinkdl" broker stop --state "$STATE" >/dev/null  # a broker left over from an interrupted run
BOOT=$("$BIN/flinkdl" broker start --state "$STATE" --topics clicks,predictions,clicks-dead-letters)
trap '"$BIN/flinkdl" broker stop --state "$STATE" >/dev/null' EXIT
echo "run: local Kafka broker (tansu, in memory) at $BOOT"
"$BIN/flinkdl" produce --bootstrap "$BOOT" --topic clicks --generator --limit "$EVENTS"
"$BIN/flinkdl" run jobs/click_stream_kafka.yaml --set "source.kafka.bootstrap_servers=$BOOT" \
  --max-events "$EVENTS" --summary runs/click-stream-kafka-summary.json
"$BIN/python" - "$BOOT" <<'PY'
import json, sys
from flinkdl.devtools.produce import read_topic
msgs = read_topic(sys.argv[1], "predictions", idle_s=3)
print(f"run: {len(msgs):,} messages on topic 'predictions'; last: {msgs[-1].value().decode() if msgs else '-'}")
PY
