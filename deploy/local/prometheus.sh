#!/usr/bin/env bash
# The demo's Prometheus: Debian's `prometheus` (deploy/local/install.sh) on 127.0.0.1, scraping a
# running daemon every second with the project's alert rules (deploy/prometheus/alerts.yml).
#
#   deploy/local/prometheus.sh start TARGET DIR [PORT]   # TARGET: the daemon's host:port
#   deploy/local/prometheus.sh stop DIR
#   deploy/local/prometheus.sh graph-url PORT
#
# `start` writes DIR/prometheus.yml (DIR/data is the server's own data directory, DIR/pid its
# PID, DIR/port its port, DIR/prometheus.log its log), starts the server on PORT (9091 unless
# given; a free port when that one is taken), waits until it is ready and the rules are loaded,
# and prints the URL of a graph of the daemon: consumed, applied and published per second, the
# consumer lag, and the circuit breakers' states. `stop` stops the server by the PID in DIR/pid.
# `make demo` does both; the graph is the same as `graph-url` prints.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

graph_url() { # PORT
  python3 - "$1" <<'PY'
import sys, urllib.parse
port = sys.argv[1]
w = "[15s]"
rates = " or ".join(
    f'label_replace(sum(rate({metric}{w})), "what", "{name}", "", "")'
    for name, metric in [
        ("consumed", "eda_kafka_messages_consumed_total"),
        ("applied", "eda_cdc_events_total"),
        ("published", "eda_eventbridge_events_published_total"),
    ]
)
panels = [
    rates,
    "sum by (topic) (eda_kafka_consumer_lag_messages)",
    "max by (region) (eda_circuit_breaker_state)",
]
params = {}
for i, expr in enumerate(panels):
    params.update({f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": "5m",
                   f"g{i}.stacked": "0", f"g{i}.show_exemplars": "0"})
print(f"http://127.0.0.1:{port}/graph?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}")
PY
}

port_free() { # PORT
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

start() { # TARGET DIR [PORT]
  local target=$1 dir=$2 port=${3:-9091}
  command -v prometheus >/dev/null || { echo "missing prometheus: run deploy/local/install.sh" >&2; exit 1; }
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "a Prometheus of $dir already runs (pid $(cat "$dir/pid")); stop it first: $0 stop $dir" >&2
    exit 1
  fi
  if ! port_free "$port"; then
    local taken=$port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "[prometheus] port $taken is taken; using $port" >&2
  fi
  mkdir -p "$dir/data"
  cat > "$dir/prometheus.yml" <<YAML
# Written by deploy/local/prometheus.sh: the demo's Prometheus.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: eda-daemon
    metrics_path: /metrics
    static_configs:
      - targets: ["$target"]
YAML
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$port" \
    --log.level=warn >"$dir/prometheus.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$dir/pid"
  echo "$port" > "$dir/port"
  for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 \
      && curl -fsS "http://127.0.0.1:$port/api/v1/rules" | grep -q '"groups":\[{'; then
      echo "[prometheus] pid $pid on http://127.0.0.1:$port scraping $target every 1 s, rules of deploy/prometheus/alerts.yml loaded (data: $dir/data)"
      echo "[prometheus] graph: $(graph_url "$port")"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "[prometheus] did not get ready; its log ($dir/prometheus.log):" >&2
  tail -20 "$dir/prometheus.log" >&2
  stop "$dir"
  exit 1
}

stop() { # DIR
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    echo "[prometheus] stopped (pid $pid)"
  fi
  rm -f "$dir/pid"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  graph-url) shift; graph_url "$@" ;;
  *) echo "usage: $0 start TARGET DIR [PORT] | stop DIR | graph-url PORT" >&2; exit 2 ;;
esac
