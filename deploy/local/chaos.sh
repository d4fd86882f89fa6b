#!/usr/bin/env bash
# `make chaos`: the chaos suite (daemon/tests/it/chaos.rs) against the local stack, one scenario
# at a time, then the table of its rows: scenario, changes, events seen, duplicates, dead
# letters, lost, recovery seconds. Every row must say 0 lost. The stack is started (and stopped)
# around it by `stack.sh with`, like `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}
dir=target/chaos
report="$PWD/$dir/rows.md"
mkdir -p "$dir"
: >"$report"
started=$(date +%s)
status=0
CHAOS_REPORT="$report" $CARGO test -p eda-daemon --test it chaos:: -- \
  --ignored --test-threads=1 ${CHAOS_FILTER:+--exact "$CHAOS_FILTER"} || status=$?
took=$(($(date +%s) - started))
{
  echo "| scenario | changes | events seen | duplicates | dead letters | lost | recovery s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  cat "$report"
} >"$dir/table.md"
echo
cat "$dir/table.md"
echo
echo "chaos suite: $(grep -c '^|' "$report" || true) rows in ${took} s (table in $dir/table.md)"
exit "$status"
