#!/usr/bin/env bash
# A real Prometheus server scrapes a running daemon and its query API must show the consumed-
# messages counter increasing. For the end-to-end test, while traffic flows:
#
#   deploy/prometheus/scrape-check.sh 127.0.0.1:9090 [TIMEOUT_SECONDS]
#
# Starts Debian's `prometheus` (deploy/local/install.sh) on a free loopback port with a 1 s
# scrape of TARGET and the alert rules of alerts.yml, waits until the target is up and
# `increase(eda_kafka_messages_consumed_total[15s])` is above zero, prints what it saw, and stops
# the server by its PID. Exits 0 on success, 1 on timeout (printing the server's log).
set -euo pipefail

TARGET=${1:?usage: scrape-check.sh HOST:PORT [TIMEOUT_SECONDS]}
TIMEOUT=${2:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v prometheus >/dev/null || { echo "missing prometheus: run deploy/local/install.sh" >&2; exit 1; }

WORK=$(mktemp -d)
PROM_PID=""
cleanup() {
  if [ -n "$PROM_PID" ]; then
    kill "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PROM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp "$HERE/alerts.yml" "$WORK/"
cat > "$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: eda-daemon
    static_configs:
      - targets: ["$TARGET"]
YAML

prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
echo "[scrape-check] prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}') pid $PROM_PID on 127.0.0.1:$PROM_PORT scraping $TARGET"

if python3 - "$PROM_PORT" "$TIMEOUT" <<'PY'
import json, sys, time, urllib.parse, urllib.request

port, timeout = sys.argv[1], float(sys.argv[2])
api = f"http://127.0.0.1:{port}/api/v1"

def get(path, **params):
    url = f"{api}/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]

deadline = time.monotonic() + timeout
seen = None
while time.monotonic() < deadline:
    time.sleep(1)
    try:
        targets = get("targets")["activeTargets"]
        up = [t for t in targets if t["health"] == "up"]
        if not up:
            seen = [t.get("lastError") for t in targets]
            continue
        total = get("query", query="sum(eda_kafka_messages_consumed_total)")["result"]
        rise = get("query", query="sum(increase(eda_kafka_messages_consumed_total[15s]))")["result"]
    except OSError as err:  # the server is still starting
        seen = str(err)
        continue
    seen = {"target": up[0]["scrapeUrl"], "consumed_total": total and total[0]["value"][1],
            "increase_15s": rise and rise[0]["value"][1]}
    if rise and float(rise[0]["value"][1]) > 0:
        print(f"[scrape-check] ok: {json.dumps(seen)}")
        sys.exit(0)
print(f"[scrape-check] no increase within {timeout:g} s; last seen: {seen}", file=sys.stderr)
sys.exit(1)
PY
then
  exit 0
fi
cat "$WORK/prometheus.log" >&2
exit 1
