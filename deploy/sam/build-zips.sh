#!/usr/bin/env bash
# Builds the five Lambda zips (deploy/sam/dist/<function>.zip, each holding one `bootstrap`) for
# the provided.al2023 runtime, with the size-optimized `lambda` profile.
#
#   build-zips.sh                                  the template's arm64: TARGET defaults to
#                                                  aarch64-unknown-linux-gnu
#   TARGET=x86_64-unknown-linux-gnu build-zips.sh  the host's x86_64 (rustup's toolchain)
#
# For aarch64 this machine's rustup toolchain has no aarch64 standard library and cannot fetch
# one, so the build uses Debian's rustc-web, whose aarch64 std comes from the arm64 package
# libstd-rust-web-dev, with Debian's aarch64 cross gcc as C compiler and linker
# (install-arm64-toolchain.sh installs them). Elsewhere, cargo-lambda does the same with zig:
# `cargo lambda build --profile lambda --arm64 --output-format zip`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FUNCTIONS=(authorizer stream-processor event-transformer health-checker event-router)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TARGET=${TARGET:-aarch64-unknown-linux-gnu}
ARGS=(build --profile lambda -p eda-lambda-shims --bins --target "$TARGET")
OUT="$TARGET_DIR/$TARGET/lambda"
if [ "$TARGET" = aarch64-unknown-linux-gnu ] && [ "$(uname -m)" != aarch64 ]; then
  bash "$ROOT/deploy/sam/install-arm64-toolchain.sh"
  # Debian's compiler (its aarch64 std is installed beside it); rustup's cargo drives it.
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
  export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig
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
  # provided.al2023 has glibc 2.34: no symbol may need a newer one.
  glibc=$(readelf -W --dyn-syms "$OUT/$f" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
  printf '%-18s %-7s binary %8d bytes  zip %8d bytes  needs %s\n' "$f" \
    "$(file -b "$OUT/$f" | grep -o 'x86-64\|aarch64' | head -1)" "$(stat -c %s "$OUT/$f")" \
    "$(stat -c %s "$DIST/$f.zip")" "$glibc"
done
