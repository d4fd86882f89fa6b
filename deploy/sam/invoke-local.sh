#!/usr/bin/env bash
# One real run of a shim through cargo-lambda's Lambda runtime API emulator: `cargo lambda
# watch` serves the runtime API and runs the `authorizer` binary on the local configuration;
# `cargo lambda invoke` sends it AWS's REST TOKEN sample carrying an HS256 token signed with the
# local secret, and the answer must be an Allow policy. Needs the local stack (its Secrets
# Manager) and cargo-lambda (pip install cargo-lambda, into ~/.cache/eda/venv).
# The watch process is started here and stopped by its PID.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/eda"
export PATH="$CACHE/venv/bin:$PATH"
PORT=${PORT:-9010}
command -v cargo-lambda >/dev/null || { echo "cargo-lambda is not installed (pip install cargo-lambda)"; exit 1; }

STATE="$ROOT/.local"; mkdir -p "$STATE/logs"
cd "$ROOT/lambda-shims"
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$PORT" \
  --env-var "CONFIG_FILE=$ROOT/config/local.toml,AWS_REGION=us-west-2,RUST_LOG=warn" \
  >"$STATE/logs/cargo-lambda-watch.log" 2>&1 &
WATCH=$!
trap 'kill -- -$WATCH 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.5
done

EVENT=$(mktemp)
python3 - "$ROOT/lambda-shims/tests/fixtures/example-apigw-custom-auth-request.json" >"$EVENT" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"sub": "user-1", "iss": "https://auth.eda.local", "aud": "eda-api",
                         "exp": int(time.time()) + 600, "roles": ["reader"],
                         "tenant_id": "t-1"}).encode())
secret = b"local-development-hs256-secret-change-me"
signature = b64(hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest())
event = json.load(open(sys.argv[1]))
event["authorizationToken"] = f"Bearer {header}.{claims}.{signature}"
print(json.dumps(event))
PY
ANSWER=$(cargo lambda invoke authorizer -A 127.0.0.1 -P "$PORT" --data-file "$EVENT")
rm -f "$EVENT"
echo "$ANSWER"
echo "$ANSWER" | grep -q '"Effect":"Allow"' || { echo "expected an Allow policy"; exit 1; }
echo "authorizer answered through cargo lambda watch: Allow"
