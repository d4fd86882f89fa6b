#!/usr/bin/env bash
# Checks everything under deploy/ with the real tools, offline, in about a minute (plus a build
# of eda-daemon when none is current). Run by `make lint` and `make test`.
#
#   hadolint                    deploy/docker/Dockerfile
#   promtool check config       deploy/prometheus/prometheus.yml, kubernetes.yml
#   promtool check rules        deploy/prometheus/alerts.yml
#   promtool test rules         deploy/prometheus/alerts.test.yml (the alerts' unit tests)
#   kubectl kustomize           every overlay of deploy/k8s, rendered
#   kubernetes-validate         the rendered objects against Kubernetes' OpenAPI schemas (strict)
#   eda-daemon check-config     each rendered ConfigMap, with the environment its pod gets
#   check.py                    the issue's numbers, the KEDA objects' required fields, and every
#                               dashboard/alert/autoscaler query against the metrics reference
#   cfn-lint                    deploy/aws/global.yaml, region.yaml and deploy/sam/template.yaml
#                               against CloudFormation's and SAM's resource schemas
#   aws/check_iam.py            each principal's IAM policy allows exactly the AWS calls its code
#                               makes (derived from the Rust sources)
#   aws/outputs-to-overlay.sh   on the example stacks' describe-stacks output, renders exactly the
#                               committed overlay files and SAM config, and refuses a mismatch
#
# The tools come from deploy/local/install.sh: promtool from Debian's `prometheus` package,
# kubectl (with kustomize), hadolint, kubernetes-validate and cfn-lint from PyPI in
# $CACHE/deploy-venv.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# Not EDA_ variables: those are configuration overrides.
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/eda"
TOOLS="$CACHE/deploy-venv/bin"
CARGO="${CARGO:-cargo}"
cd "$ROOT"

step() { printf '\n[check] %s\n' "$*"; }
for tool in "$TOOLS/hadolint" "$TOOLS/kubectl" "$TOOLS/kubernetes-validate" "$TOOLS/cfn-lint" "$TOOLS/python"; do
  [ -x "$tool" ] || { echo "missing $tool: run bash deploy/local/install.sh" >&2; exit 1; }
done
command -v promtool >/dev/null || { echo "missing promtool: run bash deploy/local/install.sh" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

step "hadolint $("$TOOLS/hadolint" --version | awk '{print $NF}') deploy/docker/Dockerfile"
"$TOOLS/hadolint" --failure-threshold info deploy/docker/Dockerfile
echo "ok"

step "$(promtool --version 2>&1 | head -1)"
promtool check config deploy/prometheus/prometheus.yml
# Debian builds Prometheus without Kubernetes service discovery, so its promtool rejects
# kubernetes_sd_configs: check the rest of kubernetes.yml (relabelling, rule files) with that one
# block swapped for a static target.
"$TOOLS/python" - "$WORK" <<'PY'
import shutil, sys, yaml
work = sys.argv[1]
config = yaml.safe_load(open("deploy/prometheus/kubernetes.yml"))
for job in config["scrape_configs"]:
    assert job.pop("kubernetes_sd_configs"), job["job_name"]
    job["static_configs"] = [{"targets": ["10.0.0.1:9090"]}]
yaml.safe_dump(config, open(f"{work}/kubernetes.yml", "w"))
shutil.copy("deploy/prometheus/alerts.yml", work)
PY
promtool check config "$WORK/kubernetes.yml"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

step "$("$TOOLS/kubectl" version --client | tr '\n' ' '); kubernetes-validate $("$TOOLS/kubernetes-validate" --version)"
"$TOOLS/python" deploy/check.py k8s "$TOOLS/kubectl" "$TOOLS/kubernetes-validate" \
  "$CARGO" run -q -p eda-daemon --

step "queries of the dashboard, the alerts and the autoscaler against the metrics reference"
"$TOOLS/python" deploy/check.py queries

step "$("$TOOLS/cfn-lint" --version): the data plane and the functions"
"$TOOLS/cfn-lint" deploy/aws/global.yaml deploy/aws/region.yaml deploy/sam/template.yaml
echo "ok   deploy/aws/global.yaml deploy/aws/region.yaml deploy/sam/template.yaml"

step "IAM: each principal's policy against the AWS operations its code calls"
"$TOOLS/python" deploy/aws/check_iam.py

step "outputs-to-overlay.sh: the example stacks' outputs render the committed overlays"
# The example answers of deploy/aws/examples/<overlay> (illustrative accounts) must render the
# files committed in the overlays, and the SAM config beside them (with the example issuer).
for overlay in prod dev; do
  mkdir -p "$WORK/$overlay"
  cp "deploy/k8s/overlays/$overlay/kustomization.yaml" "$WORK/$overlay/"
  sam=()
  [ -f "deploy/aws/examples/$overlay/samconfig.toml" ] &&
    sam=(--sam-config "$WORK/$overlay/samconfig.toml" --sam-param JwtIssuer=https://auth.example.com --sam-param JwtAudience=eda-api)
  bash deploy/aws/outputs-to-overlay.sh --from "deploy/aws/examples/$overlay" "${sam[@]}" "$WORK/$overlay" >/dev/null
  for f in aws-resources.env irsa-patch.yaml; do
    diff -u "deploy/k8s/overlays/$overlay/$f" "$WORK/$overlay/$f"
  done
  [ ${#sam[@]} -eq 0 ] || diff -u "deploy/aws/examples/$overlay/samconfig.toml" "$WORK/$overlay/samconfig.toml"
  echo "ok   deploy/k8s/overlays/$overlay: aws-resources.env and irsa-patch.yaml as rendered${sam:+; deploy/aws/examples/$overlay/samconfig.toml too}"
done
# The dev stacks' role trusts namespace eda-dev: rendering them into the prod overlay must fail.
cp deploy/k8s/overlays/prod/kustomization.yaml "$WORK/prod/"
if refusal=$(bash deploy/aws/outputs-to-overlay.sh --from deploy/aws/examples/dev "$WORK/prod" 2>&1); then
  echo "outputs-to-overlay.sh took the dev stacks' outputs for the prod overlay" >&2
  exit 1
fi
echo "ok   refuses the dev stacks for the prod overlay: ${refusal#outputs-to-overlay: }"
# A regional stack whose queue is not the one eda-global's role names must fail too.
cp -r deploy/aws/examples/prod "$WORK/renamed"
sed -i 's/"OutputValue": "eda-owed"/"OutputValue": "eda-owed-2"/; s|/eda-owed"|/eda-owed-2"|' "$WORK/renamed/secondary.json" "$WORK/renamed/primary.json"
if refusal=$(bash deploy/aws/outputs-to-overlay.sh --from "$WORK/renamed" "$WORK/prod" 2>&1); then
  echo "outputs-to-overlay.sh took queues the daemon's role does not name" >&2
  exit 1
fi
echo "ok   refuses queues the role does not name: ${refusal#outputs-to-overlay: }"

step "deploy checks passed"
