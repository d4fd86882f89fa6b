#!/usr/bin/env bash
# Installs, once, everything the local stack and the tests need on a fresh machine:
# Debian packages for the rdkafka build, the tansu Kafka-API broker (cargo), AWS's DynamoDB Local
# (npm package amplify-dynamodb-simulator), moto server and karapace (PyPI, in a venv).
# Every step is skipped when its result is already present, so running it twice is cheap.
# Everything lands under $EDA_CACHE (default ~/.cache/eda), outside the work tree.
set -euo pipefail

EDA_CACHE=${EDA_CACHE:-$HOME/.cache/eda}
mkdir -p "$EDA_CACHE"
log() { printf '[install] %s\n' "$*"; }

need_apt=()
for pkg in cmake libsasl2-dev libssl-dev libcurl4-openssl-dev pkg-config zlib1g-dev prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian prometheus package starts a service on :9090 where systemd runs; we only want its
# binaries (promtool, prometheus), so stop anything it started.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true; fi
pkill -x prometheus-node-exporter >/dev/null 2>&1 || true
pgrep -f '^/usr/bin/prometheus' >/dev/null 2>&1 && pkill -f '^/usr/bin/prometheus' || true

# Python servers: moto (EventBridge, SQS, Secrets Manager) and karapace (Schema Registry).
if [ ! -x "$EDA_CACHE/venv/bin/moto_server" ]; then
  log "pip install moto[server] into $EDA_CACHE/venv"
  python3 -m venv "$EDA_CACHE/venv"
  "$EDA_CACHE/venv/bin/pip" install -q --upgrade pip
  "$EDA_CACHE/venv/bin/pip" install -q 'moto[server]>=5,<6'
fi

# DynamoDB Local, as shipped inside the npm package.
DDB_DIR="$EDA_CACHE/ddb"
if [ ! -f "$DDB_DIR/node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar" ]; then
  log "npm install amplify-dynamodb-simulator into $DDB_DIR"
  mkdir -p "$DDB_DIR"
  (cd "$DDB_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts amplify-dynamodb-simulator >/dev/null)
fi

# tansu, the Kafka-API broker. The build takes about 13 minutes on two cores: do it once.
if [ ! -x "$EDA_CACHE/tansu/bin/tansu" ]; then
  log "cargo install tansu (about 13 minutes, once)"
  CARGO_TARGET_DIR="$EDA_CACHE/tansu-build" cargo install tansu --locked --features dynostore \
    --root "$EDA_CACHE/tansu" --quiet
  rm -rf "$EDA_CACHE/tansu-build"
fi
log "done: $EDA_CACHE"
