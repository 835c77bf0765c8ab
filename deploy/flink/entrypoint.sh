#!/bin/sh
# jobmanager | taskmanager: merge $FLINK_PROPERTIES (flat "key: value" lines) into the distribution's
# config.yaml, then run that Flink process in the foreground. Anything else runs as given (flinkdl, flink).
set -e
# the distribution's conf files (log4j, ...) once, where FLINK_CONF_DIR points (the flink CLI reads it too)
[ -f "$FLINK_CONF_DIR/config.yaml" ] || cp -r "$FLINK_HOME/conf/." "$FLINK_CONF_DIR/"
conf() {
  python - <<'PY'
import os, yaml
path = os.path.join(os.environ["FLINK_CONF_DIR"], "config.yaml")
base = yaml.safe_load(open(path)) or {}

def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out

conf = flat(base)
conf.pop("taskmanager.host", None)  # the distribution's "localhost": let each TaskManager find its own address
conf.update({"rest.bind-address": "0.0.0.0", "jobmanager.bind-host": "0.0.0.0", "taskmanager.bind-host": "0.0.0.0"})
conf.update(flat(yaml.safe_load(os.environ.get("FLINK_PROPERTIES", "")) or {}))
with open(path, "w") as f:
    yaml.safe_dump(conf, f, sort_keys=True)
PY
}
case "$1" in
  jobmanager) conf; exec "$FLINK_HOME/bin/jobmanager.sh" start-foreground ;;
  taskmanager) conf; exec "$FLINK_HOME/bin/taskmanager.sh" start-foreground ;;
  --help) echo "usage: jobmanager | taskmanager | flinkdl ... | flink ..."; exit 0 ;;
  *) exec "$@" ;;
esac
