#!/usr/bin/env bash
# Builds the five Lambda zips (deploy/sam/dist/<function>.zip, each holding one `bootstrap`) for
# the provided.al2023 runtime, with the size-optimized `lambda` profile.
#
#   build-zips.sh            plain cargo build for the host target (what works on any machine
#                            with a Rust toolchain; x86_64 here, so the template's arm64 needs
#                            TARGET=aarch64-unknown-linux-gnu and that target's std and linker)
#   TARGET=... build-zips.sh cross-build for another target triple
#
# cargo-lambda (`pip install cargo-lambda`, which brings zig) does the same with
# `cargo lambda build --profile lambda --arm64 --output-format zip`; it needs the aarch64 std
# from rustup, which this machine cannot download, hence the plain build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FUNCTIONS=(authorizer stream-processor event-transformer health-checker event-router)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ARGS=(build --profile lambda -p eda-lambda-shims --bins)
OUT="$TARGET_DIR/lambda"
if [ -n "${TARGET:-}" ]; then
  ARGS+=(--target "$TARGET")
  OUT="$TARGET_DIR/$TARGET/lambda"
fi
${CARGO:-cargo} "${ARGS[@]}"
DIST="$ROOT/deploy/sam/dist"
mkdir -p "$DIST"
for f in "${FUNCTIONS[@]}"; do
  stage=$(mktemp -d)
  cp "$OUT/$f" "$stage/bootstrap"
  rm -f "$DIST/$f.zip"
  # Deterministic: fixed mtime, no extra attributes.
  touch -d '2020-01-01T00:00:00Z' "$stage/bootstrap"
  (cd "$stage" && python3 -c "
import zipfile, sys
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    info = zipfile.ZipInfo('bootstrap', date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, open('bootstrap', 'rb').read(), compresslevel=9)
" "$DIST/$f.zip")
  rm -rf "$stage"
  printf '%-18s binary %8d bytes  zip %8d bytes\n' "$f" "$(stat -c %s "$OUT/$f")" "$(stat -c %s "$DIST/$f.zip")"
done
