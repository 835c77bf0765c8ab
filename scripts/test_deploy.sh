#!/usr/bin/env bash
# `make test-deploy`: run docker-compose.yml for real on this machine, then remove everything it made.
# Needs root (apt, dockerd, debootstrap). Steps: Docker engine (private socket and data root), a Debian
# bookworm root filesystem (debootstrap) imported as an image, the flinkdl image from it
# (deploy/test/Dockerfile.local: our wheel + the bind-mounted virtualenv), the stack up with
# deploy/test/docker-compose.local.yml, events produced, predictions read back from the topic,
# Prometheus asked whether it scrapes the job; then down, images, containers and the daemon removed.
# KEEP=1 leaves the stack up (and the daemon running) for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
VENV=$("$PY" -c 'import sys; print(sys.prefix)')
EVENTS=${EVENTS:-20000}
WORK=${WORK:-/tmp/flinkdl-test-deploy}
SOCK=$WORK/docker.sock
export DOCKER_HOST=unix://$SOCK COMPOSE_PROJECT_NAME=flinkdl-test
STACK=$WORK/stack.yml   # docker-compose.yml + deploy/test/docker-compose.local.yml, published ports dropped
COMPOSE=(docker-compose -p flinkdl-test --project-directory "$ROOT" -f "$STACK")
T0=$(date +%s)
say() { echo "[test-deploy $(( $(date +%s) - T0 ))s] $*"; }

cleanup() {
  rc=$?
  if [ "${KEEP:-0}" = 1 ]; then say "KEEP=1: stack left up (DOCKER_HOST=$DOCKER_HOST)"; exit $rc; fi
  if [ $rc -ne 0 ] && [ -S "$SOCK" ]; then "${COMPOSE[@]}" logs --tail=40 >"$WORK/compose.log" 2>&1 || true
    say "failed (exit $rc); last service logs: $WORK/compose.log"; fi
  if [ -S "$SOCK" ]; then
    "${COMPOSE[@]}" down -v --rmi all --remove-orphans >/dev/null 2>&1 || true
    docker rmi -f flinkdl/bookworm:local >/dev/null 2>&1 || true
  fi
  if [ -f "$WORK/dockerd.pid" ]; then kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 30); do [ -f "$WORK/dockerd.pid" ] || break; sleep 1; done; fi
  grep -o "$WORK/exec/[^ ]*" /proc/mounts | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK/data" "$WORK/exec" "$WORK/rootfs" "$WORK/secrets" "$STACK" "$STACK.merged" \
    "$ROOT/build/test-deploy" "$ROOT/build/lib" "$ROOT"/build/bdist.*
  say "removed containers, volumes, images and the daemon (exit $rc)"
  exit $rc
}

[ "$(id -u)" = 0 ] || { echo "test-deploy needs root (dockerd, debootstrap)" >&2; exit 2; }
mkdir -p "$WORK"
trap cleanup EXIT
for pkg in docker.io debootstrap docker-compose prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || NEED="${NEED:-} $pkg"; done
if [ -n "${NEED:-}" ]; then say "apt-get install$NEED"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q $NEED >/dev/null; fi

say "dockerd (data root $WORK/data; no bridge: host networking only)"
dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" -H "$DOCKER_HOST" \
  --iptables=false --ip-forward=false --bridge=none >"$WORK/dockerd.log" 2>&1 &
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null

say "debootstrap bookworm → flinkdl/bookworm:local"
debootstrap --variant=minbase --include=python3.11,openjdk-17-jre-headless,procps,ca-certificates \
  bookworm "$WORK/rootfs" >"$WORK/debootstrap.log" 2>&1   # debootstrap's default Debian mirror
tar -C "$WORK/rootfs" -c . | docker import - flinkdl/bookworm:local >/dev/null
rm -rf "$WORK/rootfs"

say "our wheel"
rm -rf build/test-deploy && mkdir -p build/test-deploy
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w build/test-deploy . >/dev/null
WHEEL=$(ls build/test-deploy/flinkdl-*.whl)

mkdir -p "$WORK/secrets"
"$PY" - "$WORK/secrets" <<'PY'
import secrets, sys, pathlib
d = pathlib.Path(sys.argv[1]); t = {r: secrets.token_hex(16) for r in ("read", "write", "admin")}
(d / "ps-tokens.yaml").write_text("".join(f"{r}: {v}\n" for r, v in t.items())); (d / "ps-write-token").write_text(t["write"])
PY
export FLINKDL_VENV=$VENV FLINKDL_PYTHON_HOME=$("$PY" -c 'import sys; print(sys.base_prefix)')
export FLINKDL_SECRETS=$WORK/secrets FLINKDL_PROMETHEUS=$(command -v prometheus)

say "build the flinkdl image"
B0=$(date +%s)
docker build -q -f deploy/test/Dockerfile.local --build-arg VENV="$VENV" --build-arg WHEEL="$WHEEL" \
  -t flinkdl/flink:local . >/dev/null
say "image built in $(( $(date +%s) - B0 ))s"

# Compose cannot drop a key in an override, and a host-network container refuses published ports:
# merge the two files, then remove `ports` (meaningless with host networking) and nothing else.
docker-compose -f docker-compose.yml -f deploy/test/docker-compose.local.yml config >"$STACK.merged"
"$PY" - "$STACK.merged" "$STACK" <<'PY'
import sys, yaml
stack = yaml.safe_load(open(sys.argv[1]))
for svc in stack["services"].values():
    if svc.get("network_mode") == "host":
        svc.pop("ports", None)
yaml.safe_dump(stack, open(sys.argv[2], "w"), sort_keys=False)
PY
say "compose up (kafka=tansu, topics, ps, jobmanager, taskmanager, submit, prometheus)"
"${COMPOSE[@]}" up -d --no-build >"$WORK/up.log" 2>&1
SUBMIT=$("${COMPOSE[@]}" ps -q submit)
[ "$(docker wait "$SUBMIT")" = 0 ] || { docker logs "$SUBMIT" | tail -30; exit 1; }
say "submitted: $(docker logs "$SUBMIT" 2>&1 | grep -o 'JobID [0-9a-f]*')"

say "produce $EVENTS events, read the predictions back"
"$PY" -m flinkdl.cli produce --bootstrap 127.0.0.1:19092 --topic clicks --generator --limit "$EVENTS" >/dev/null
"$PY" - "$EVENTS" <<'PY'
import sys, time
from confluent_kafka import Consumer
want, n, deadline = int(sys.argv[1]), 0, time.time() + 300
c = Consumer({"bootstrap.servers": "127.0.0.1:19092", "group.id": "test-deploy", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000})
c.subscribe(["predictions"])
while n < want and time.time() < deadline:
    for m in c.consume(500, 1.0):
        if m.error() is None:
            n += 1
c.close()
print(f"predictions read back: {n} of {want}")
sys.exit(0 if n >= want else 1)
PY

say "Prometheus scrapes the job"
"$PY" - <<'PY'
import json, sys, time, urllib.parse, urllib.request
def q(expr):
    url = "http://127.0.0.1:19090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
deadline = time.time() + 60
while time.time() < deadline:
    up = {r["metric"]["job"]: r["value"][1] for r in q("up")}
    events = q("sum(flinkdl_events_in_total)")  # the exporter's own job label (job.name) is honoured
    if up.get("flinkdl") == "1" and up.get("flinkdl-ps") == "1" and events:
        print(f"up: {up}; flinkdl_events_in_total = {events[0]['value'][1]}")
        sys.exit(0)
    time.sleep(2)
print(f"Prometheus: up {up}, flinkdl_events_in_total {events}")
sys.exit(1)
PY
say "PASS"
