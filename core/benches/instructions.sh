#!/usr/bin/env bash
# `make bench-ir`: instructions per event of the hot paths, counted by callgrind. Exact to a few
# instructions from run to run, where wall-clock time on a shared machine moves by tens of
# percent: the figure to compare two versions of the code by. Each path runs 1000 and 3000 times;
# the difference over 2000 leaves out start-up and set-up.
#
# Under valgrind SHA-256 runs in software (valgrind hides SHA-NI), about 3.5K instructions of the
# Qlik figure that real hardware does in a few hundred cycles.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}

if ! command -v valgrind >/dev/null; then
  echo "bench-ir: valgrind is not installed (apt-get install valgrind)" >&2
  exit 2
fi

$CARGO build -q --release -p eda-core --example instructions --example allocations
bin=${CARGO_TARGET_DIR:-target}/release/examples/instructions

# Instructions callgrind counted for `$bin $path $n` (the program's output is checked too: every
# event must have gone through, or the figure would time an error path).
count() {
  local path=$1 n=$2 out ir
  out=$(mktemp)
  if ! valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$path" "$n" \
    >"$out.stdout" 2>"$out"; then
    echo "bench-ir: valgrind failed on $path: $(tail -n 3 "$out")" >&2
    rm -f "$out" "$out.stdout"
    exit 1
  fi
  if ! grep -qx "$n of $n events" "$out.stdout"; then
    echo "bench-ir: $path did not put all $n events through: $(cat "$out.stdout")" >&2
    rm -f "$out" "$out.stdout"
    exit 1
  fi
  ir=$(grep -o 'Collected : [0-9]*' "$out" | grep -o '[0-9]*$')
  rm -f "$out" "$out.stdout"
  echo "$ir"
}

for path in qlik avro entry change envelope message; do
  low=$(count "$path" 1000)
  high=$(count "$path" 3000)
  echo "$path: $(( (high - low) / 2000 )) instructions per event"
done
# `message`'s allocation calls, counted by a counting allocator in a binary of its own (so the
# counter costs `instructions` nothing).
"${CARGO_TARGET_DIR:-target}/release/examples/allocations" 1000

# `exchange`: one HTTP exchange of the lean client (a ~1 KB conditional `PutItem` written, signed,
# sent and its answer read: actors/examples/exchange.rs), against `eda-loadtest sink` in its own
# process (started fresh for each count, so every write is applied); only the client is counted.
# SHA-256 (of the body and the canonical request) is ~113K of it under valgrind.
$CARGO build -q --release -p eda-actors --example exchange -p eda-loadtest
target=${CARGO_TARGET_DIR:-target}/release
exchange() {
  local n=$1 out sink url ir
  out=$(mktemp)
  "$target/eda-loadtest" sink --listen 127.0.0.1:0 >"$out.sink" 2>/dev/null &
  sink=$!
  for _ in $(seq 100); do grep -q listening "$out.sink" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$out.sink")
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$target/examples/exchange" "$url" "$n" \
    >"$out.stdout" 2>"$out" || true
  kill "$sink"; wait "$sink" 2>/dev/null || true
  if ! grep -qx "$n of $n exchanges" "$out.stdout"; then
    echo "bench-ir: exchange did not apply all $n writes: $(cat "$out.stdout") $(tail -n 3 "$out")" >&2
    rm -f "$out" "$out.stdout" "$out.sink"
    exit 1
  fi
  ir=$(grep -o 'Collected : [0-9]*' "$out" | grep -o '[0-9]*$')
  rm -f "$out" "$out.stdout" "$out.sink"
  echo "$ir"
}
low=$(exchange 1000)
high=$(exchange 3000)
echo "exchange: $(( (high - low) / 2000 )) instructions per exchange"

# `sink`: what `eda-loadtest sink` (the blackhole AWS endpoint of `make bench-e2e`) spends
# answering one call: the sink runs under callgrind, fresh for each count, and native drivers
# call it: `exchange` (above: ~1 KB conditional `PutItem`s, each of a new key) and
# loadtest/examples/put_events.rs (`PutEvents` of 10 entries with ~1.4 KB details like the
# daemon's change events). The sink's own statistics, printed when it stops, must show every call
# answered without an error (and every event counted), or the figure would time an error path.
# SINK_BIN=path counts another build of the sink (another branch's) against the same drivers.
$CARGO build -q --release -p eda-loadtest --example put_events
sink_bin=${SINK_BIN:-$target/eda-loadtest}
sink_count() {
  local driver=$1 n=$2 out sink url ir stats
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="${CALLGRIND_OUT:-/dev/null}" "$sink_bin" sink \
    --listen 127.0.0.1:0 >"$out.sink" 2>"$out" &
  sink=$!
  for _ in $(seq 600); do grep -q listening "$out.sink" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$out.sink")
  "$target/examples/$driver" "$url" "$n" >"$out.stdout" 2>&1 || true
  kill -TERM "$sink"; wait "$sink" 2>/dev/null || true
  stats=$(grep '^{"calls"' "$out" || true)
  case $driver in
    exchange) want='"dynamodb.PutItem":{"calls":'"$n"',"errors":0,"failed":0,"throttled":0}'
              grep -qx "$n of $n exchanges" "$out.stdout" && [[ $stats == *"$want"* ]] ;;
    put_events) want='"us-west-2/eda.cdc":{"distinct":'"$((n * 10))"',"total":'"$((n * 10))"',"without_id":0}'
                grep -qx "$n of $n calls" "$out.stdout" && [[ $stats == *"$want"* ]] ;;
  esac || {
    echo "bench-ir: the sink did not answer all $n calls of $driver: $(cat "$out.stdout") $stats $(tail -n 3 "$out")" >&2
    rm -f "$out" "$out.stdout" "$out.sink"
    exit 1
  }
  ir=$(grep -o 'Collected : [0-9]*' "$out" | grep -o '[0-9]*$')
  rm -f "$out" "$out.stdout" "$out.sink"
  echo "$ir"
}
put_low=$(sink_count exchange 1000)
put_high=$(sink_count exchange 3000)
events_low=$(sink_count put_events 1000)
events_high=$(sink_count put_events 3000)
echo "sink: $(( (put_high - put_low) / 2000 )) instructions per PutItem, $(( (events_high - events_low) / 2000 )) per 10-entry PutEvents"
