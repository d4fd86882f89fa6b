#!/usr/bin/env bash
# The local stack of real servers, without Docker, all on 127.0.0.1:
#   kafka            tansu Kafka-API broker (memory storage)        :9092
#   dynamodb         AWS DynamoDB Local (Java), with Streams        :8000
#   aws              ministack: EventBridge, SQS, Secrets Manager   :5000
#   schema-registry  Confluent-API stand-in (schema_registry.py)    :8081
#
#   stack.sh up       install what is missing, start what is not running, create resources
#   stack.sh down     stop what `up` started (by PID), nothing else
#   stack.sh status   each server's state; exit 0 only when all are up
#   stack.sh with CMD run CMD with the stack up, then leave the stack as it was found
#
# State, PIDs and logs live under .local/ (git-ignored); installs under ~/.cache/eda.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE="$ROOT/.local"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/eda"
mkdir -p "$STATE/pids" "$STATE/logs"

SERVERS=(kafka dynamodb aws schema-registry)
# Servers earlier versions of this script started (moto held :5000): `up` and `down` stop them.
LEGACY=(moto)
DDB_DIR="$CACHE/ddb/node_modules/amplify-dynamodb-simulator/emulator"

port_of() {
  case "$1" in
    kafka) echo 9092 ;; dynamodb) echo 8000 ;; aws) echo 5000 ;; schema-registry) echo 8081 ;;
  esac
}

command_of() {
  case "$1" in
    kafka)
      echo "$CACHE/tansu/bin/tansu broker --storage-engine memory://tansu/ \
        --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
        --kafka-cluster-id eda-local" ;;
    dynamodb)
      echo "env LD_PRELOAD=$CACHE/bind_loopback.so java -Xmx1g -Djava.net.preferIPv4Stack=true \
        -Djava.library.path=$DDB_DIR/DynamoDBLocal_lib -jar $DDB_DIR/DynamoDBLocal.jar \
        -inMemory -port 8000 -disableTelemetry" ;;
    aws)
      # One account (the local access key's 12 digits, as config/local.toml's queue URLs say),
      # queue URLs on 127.0.0.1, only the three services eda uses, bound to loopback.
      echo "env MINISTACK_ACCOUNT_ID=123456789012 MINISTACK_HOST=127.0.0.1 BIND_HOST=127.0.0.1 \
        GATEWAY_PORT=5000 SERVICES=events,sqs,secretsmanager LOG_LEVEL=WARNING \
        $CACHE/venv/bin/ministack" ;;
    schema-registry)
      echo "python3 $HERE/schema_registry.py --host 127.0.0.1 --port 8081" ;;
  esac
}

log() { printf '[stack] %s\n' "$*"; }

pid_of() {
  local file="$STATE/pids/$1.pid"
  [ -f "$file" ] || return 1
  local pid
  pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local name=$1 port pid
  port=$(port_of "$name")
  if pid=$(pid_of "$name"); then
    log "$name already running (pid $pid, 127.0.0.1:$port)"
    return 0
  fi
  if port_open "$port"; then
    log "error: 127.0.0.1:$port is taken by a process this script did not start; stop it first"
    return 1
  fi
  # setsid: the server gets its own process group, so `down` can stop it and its children.
  # Run from .local/: DynamoDB Local writes a metadata file into its working directory.
  mkdir -p "$STATE/run"
  # shellcheck disable=SC2046
  (cd "$STATE/run" && exec setsid $(command_of "$name") >"$STATE/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$STATE/pids/$name.pid"
  for _ in $(seq 1 120); do
    if port_open "$port"; then
      log "$name started (pid $(cat "$STATE/pids/$name.pid"), 127.0.0.1:$port)"
      return 0
    fi
    if ! pid_of "$name" >/dev/null; then
      log "error: $name exited during start-up; last lines of $STATE/logs/$name.log:"
      tail -n 20 "$STATE/logs/$name.log" >&2 || true
      rm -f "$STATE/pids/$name.pid"
      return 1
    fi
    sleep 0.5
  done
  log "error: $name did not open 127.0.0.1:$port within 60 s; see $STATE/logs/$name.log"
  return 1
}

stop() {
  local name=$1 pid
  if ! pid=$(pid_of "$name"); then
    rm -f "$STATE/pids/$name.pid"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$STATE/pids/$name.pid"
  log "$name stopped (pid $pid)"
}

create_topics() {
  local tansu="$CACHE/tansu/bin/tansu" existing topic
  # `tansu topic list` answers with the Metadata response as JSON.
  existing=$("$tansu" topic list --broker tcp://127.0.0.1:9092 |
    python3 -c 'import json, sys; print("\n".join(t["name"] for t in json.load(sys.stdin)))')
  for topic in qlik.cdc qlik.cdc.avro; do
    if grep -qx "$topic" <<<"$existing"; then
      continue
    fi
    "$tansu" topic create "$topic" --partitions 4 --broker tcp://127.0.0.1:9092 >/dev/null
    log "topic $topic created (4 partitions)"
  done
}

all_up() {
  local name
  for name in "${SERVERS[@]}"; do
    pid_of "$name" >/dev/null || return 1
  done
}

up() {
  bash "$HERE/install.sh"
  local name
  for name in "${LEGACY[@]}"; do
    stop "$name"
  done
  # A broker started before install.sh replaced its binary (a new tansu patch) still runs the
  # old code: restart it. (Its topics live in memory; create_topics makes the stack's again.)
  local pid
  if pid=$(pid_of kafka) && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == *" (deleted)" ]]; then
    log "kafka runs a binary install.sh has since replaced; restarting it"
    stop kafka
  fi
  for name in "${SERVERS[@]}"; do
    start "$name"
  done
  create_topics
  "$CACHE/venv/bin/python" "$HERE/resources.py"
  log "up: kafka 127.0.0.1:9092, dynamodb :8000, aws (ministack) :5000, schema-registry :8081"
}

down() {
  local name
  for name in "${SERVERS[@]}" "${LEGACY[@]}"; do
    stop "$name"
  done
}

status() {
  local name pid rc=0
  for name in "${SERVERS[@]}"; do
    if pid=$(pid_of "$name"); then
      printf '%-16s running  pid %-7s 127.0.0.1:%s\n' "$name" "$pid" "$(port_of "$name")"
    else
      printf '%-16s stopped\n' "$name"
      rc=1
    fi
  done
  return $rc
}

# Runs a command with the stack up; stops the stack afterwards only if it was not running
# before, so `make test` leaves the machine as it found it.
with_stack() {
  local was_up=0 rc=0
  all_up && was_up=1
  up
  "$@" || rc=$?
  if [ $was_up -eq 0 ]; then
    down
  fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  with) shift; with_stack "$@" ;;
  *) echo "usage: $0 up|down|status|with CMD..." >&2; exit 64 ;;
esac
