#!/usr/bin/env bash
# `make demo`: the daemon on the local stack with sample traffic.
#
# Brings the stack up, starts `eda-daemon run --config config/local.toml`, produces a few
# thousand Qlik CDC changes (with duplicates, redeliveries and two poison messages) to qlik.cdc,
# waits until the daemon has settled them, prints a summary, and leaves the daemon running
# until Ctrl-C (which stops it gracefully: drain, commit, leave the group). A local Prometheus
# (deploy/local/prometheus.sh; its data in .local/prometheus/) scrapes the daemon with the alert
# rules loaded while the demo runs, and the demo prints the URL of a graph of it; both are stopped
# by PID when the demo ends. The stack stays up; `make stack-down` stops it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
CONFIG=config/local.toml
METRICS=http://127.0.0.1:9090
PROM_DIR=.local/prometheus
PROM_PORT=${PROMETHEUS_PORT:-9091}

bash "$HERE/stack.sh" up
echo "[demo] building eda-daemon and eda-loadtest"
$CARGO build -q -p eda-daemon -p eda-loadtest
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

mkdir -p .local/logs
# The default settings: the stand-ins keep up, so the breakers and probes judge them as they
# would judge AWS.
"$BIN/eda-daemon" run --config "$CONFIG" 2> .local/logs/daemon.log &
DAEMON=$!
stop() {
  if kill -0 "$DAEMON" 2>/dev/null; then
    echo; echo "[demo] stopping the daemon (SIGTERM: drain, commit, leave the group)"
    kill -TERM "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
  fi
}
trap stop EXIT INT TERM

metric() { # sum of the samples of one metric name
  curl -fsS "$METRICS/metrics" 2>/dev/null | awk -v n="$1" '$1 ~ "^"n"({|$)" {s+=$NF} END {printf "%d", s}'
}

echo "[demo] waiting for the daemon to be ready ($METRICS/readyz)"
for _ in $(seq 1 120); do
  curl -fsS "$METRICS/readyz" >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "[demo] the daemon exited; see .local/logs/daemon.log"; tail -20 .local/logs/daemon.log; exit 1; }
  sleep 0.5
done

# Count what this run sees on the inspection queues (each reader empties its queue first).
SEEN=.local/demo-inspected
"$HOME/.cache/eda/venv/bin/python" "$HERE/inspect_queue.py" eda-inspect "$SEEN" us-west-2 &
READER=$!
# The secondary region's copy: cross-region envelopes of the replicated changes.
"$HOME/.cache/eda/venv/bin/python" "$HERE/inspect_queue.py" eda-inspect "$SEEN.east" us-east-1 &
READER_EAST=$!
trap 'kill $READER $READER_EAST 2>/dev/null || true; stop' EXIT INT TERM

# Prometheus on the daemon, with the project's alert rules; stopped by its PID when the demo ends.
bash "$HERE/prometheus.sh" start 127.0.0.1:9090 "$PROM_DIR" "$PROM_PORT"
trap 'kill $READER $READER_EAST 2>/dev/null || true; stop; bash "$HERE/prometheus.sh" stop "$PROM_DIR"' EXIT INT TERM

BEFORE=$(metric eda_kafka_processing_duration_seconds_count)
OUT=$("$BIN/eda-loadtest" produce --topic qlik.cdc --keys 500 --changes 4 --poison 2 --seed "$(date +%s)")
echo "[demo] $OUT"
PRODUCED=$(echo "$OUT" | awk '{print $2}')
echo "[demo] waiting until all $PRODUCED messages are settled (written and published, or dead-lettered)"
LAST=-1; STILL=0
for _ in $(seq 1 600); do
  SETTLED=$(( $(metric eda_kafka_processing_duration_seconds_count) - BEFORE ))
  if [ "$SETTLED" = "$LAST" ]; then STILL=$((STILL + 1)); else STILL=0; fi
  LAST=$SETTLED
  # Everything read (lag 0), at least this run's messages settled, and nothing moving for 3 s.
  [ "$SETTLED" -ge "$PRODUCED" ] && [ "$(metric eda_kafka_consumer_lag_messages)" = 0 ] && [ "$STILL" -ge 6 ] && break
  sleep 0.5
done
echo "[demo] settled $SETTLED of $PRODUCED"
sleep 2

"$HOME/.cache/eda/venv/bin/python" - <<'PY'
import boto3
kw = dict(region_name="us-west-2", aws_access_key_id="123456789012", aws_secret_access_key="test")
ddb = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:8000", **kw)
sqs = boto3.client("sqs", endpoint_url="http://127.0.0.1:5000", **kw)
live = deleted = 0
for page in ddb.get_paginator("scan").paginate(TableName="eda-cdc", ProjectionExpression="pk, #d", ExpressionAttributeNames={"#d": "_deleted"}):
    for item in page["Items"]:
        if item.get("_deleted", {}).get("BOOL"):
            deleted += 1
        else:
            live += 1
def depth(name):
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]
print(f"[demo] DynamoDB table eda-cdc (us-west-2): {live} live items, {deleted} tombstones of deleted rows")
seen = open(".local/demo-inspected").read().strip() if __import__("os").path.exists(".local/demo-inspected") else "0"
east = open(".local/demo-inspected.east").read().strip() if __import__("os").path.exists(".local/demo-inspected.east") else "0"
print(f"[demo] inspection queue eda-inspect (us-west-2): {seen} events seen this run (a copy of everything on bus eda-events)")
print(f"[demo] inspection queue eda-inspect (us-east-1): {east} events seen this run (cross-region envelopes of the replicated changes)")
print(f"[demo] dead-letter queue eda-dlq: {depth('eda-dlq')} messages waiting (poison, with topic/partition/offset; earlier runs' too)")
PY
echo "[demo] consumed $(metric eda_kafka_messages_consumed_total) messages; DynamoDB puts $(metric eda_dynamodb_operations_total); events published $(metric eda_eventbridge_events_published_total); dead letters $(metric eda_dlq_messages_total)"
echo "[demo] metrics: $METRICS/metrics   health: $METRICS/healthz   ready: $METRICS/readyz   log: .local/logs/daemon.log"
echo "[demo] replay the DLQ: $BIN/eda-daemon dlq redrive --config $CONFIG"
echo "[demo] graphs (consumed/applied/published per second, lag, breakers): $(bash "$HERE/prometheus.sh" graph-url "$(cat "$PROM_DIR/port")")"
if [ -t 0 ] || [ -n "${DEMO_WAIT:-}" ]; then
  echo "[demo] the daemon keeps running; Ctrl-C to stop it"
  wait "$DAEMON"
fi
