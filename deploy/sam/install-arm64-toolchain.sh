#!/usr/bin/env bash
# Installs what `make lambdas` needs to build the template's arm64 (aarch64) zips on an x86_64
# Debian machine without rustup downloads: Debian's rustc-web (a Rust compiler, with the
# standard library for aarch64 from the arm64 architecture's libstd-rust-web-dev), the aarch64
# GNU cross compilers and linker, and the arm64 -dev packages the C parts of our dependencies
# (librdkafka, aws-lc) build against. Idempotent; needs root (or sudo) and Debian's mirrors.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
PACKAGES=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
  libc6-dev-arm64-cross libssl-dev:arm64 zlib1g-dev:arm64 libcurl4-openssl-dev:arm64
  libsasl2-dev:arm64)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[arm64] toolchain present: $(/usr/bin/rustc --version)"
  exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "[arm64] installed: ${missing[*]}; $(/usr/bin/rustc --version)"
