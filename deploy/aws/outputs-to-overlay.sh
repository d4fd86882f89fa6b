#!/usr/bin/env bash
# Renders the names and ARNs the data-plane stacks created into the files that deploy the rest, so
# every name comes from one place (the stacks' parameters) and is typed nowhere else:
#
#   OVERLAY/aws-resources.env   regions.primary.* and regions.secondary.* as EDA_ variables: the
#                               ConfigMap eda-daemon-aws, which the daemon's pods take as their
#                               environment (deploy/k8s/base/deployment.yaml, envFrom)
#   OVERLAY/irsa-patch.yaml     the service account's eks.amazonaws.com/role-arn (DaemonRoleArn)
#   --sam-config FILE           a samconfig.toml for deploy/sam, one environment per region
#                               (`sam deploy --config-env us-west-2`), with the stack parameters
#
# Usage:
#   outputs-to-overlay.sh [--primary REGION] [--global-stack NAME] [--region-stack NAME]
#                         [--save DIR] [--sam-config FILE] [--sam-param KEY=VALUE]... OVERLAY
#       asks AWS (the AWS CLI, with the caller's credentials): describe-stacks of the global stack
#       in the primary region (default eda-global in us-west-2) and of the regional stack in each
#       region (default eda-region), and describe-table of the CDC table in each region for its
#       stream; --save keeps those answers in DIR, in the layout --from reads
#   outputs-to-overlay.sh --from DIR [--sam-config FILE] [--sam-param KEY=VALUE]... OVERLAY
#       the same from saved answers: DIR/global.json, primary.json, secondary.json
#       (`aws cloudformation describe-stacks`), stream-primary.json, stream-secondary.json
#       (`aws dynamodb describe-table`, only for --sam-config). deploy/check.sh renders
#       deploy/aws/examples/<overlay> this way and compares with what is committed.
#
# It refuses outputs that cannot work together: a regional stack in the wrong region, names that
# differ between the regions (the SAM template and the daemon's role name each resource once),
# or an overlay whose namespace is not the one the role trusts.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PRIMARY=us-west-2
GLOBAL_STACK=eda-global
REGION_STACK=eda-region
FROM=""
SAVE=""
SAM_CONFIG=""
SAM_PARAMS=()
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --primary) PRIMARY=$2; shift 2 ;;
    --global-stack) GLOBAL_STACK=$2; shift 2 ;;
    --region-stack) REGION_STACK=$2; shift 2 ;;
    --from) FROM=$2; shift 2 ;;
    --save) SAVE=$2; shift 2 ;;
    --sam-config) SAM_CONFIG=$2; shift 2 ;;
    --sam-param) SAM_PARAMS+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
OVERLAY=$1
[ -f "$OVERLAY/kustomization.yaml" ] || { echo "$OVERLAY: no kustomization.yaml (an overlay of deploy/k8s?)" >&2; exit 2; }

if [ -z "$FROM" ]; then
  command -v aws >/dev/null || { echo "the AWS CLI is not installed (or pass --from DIR)" >&2; exit 1; }
  FROM=${SAVE:-$(mktemp -d)}
  mkdir -p "$FROM"
  describe() { aws cloudformation describe-stacks --output json --stack-name "$1" --region "$2"; }
  describe "$GLOBAL_STACK" "$PRIMARY" >"$FROM/global.json"
  SECONDARY=$(python3 -c 'import json, sys
print(next(o["OutputValue"] for o in json.load(open(sys.argv[1]))["Stacks"][0]["Outputs"] if o["OutputKey"] == "SecondaryRegion"))' "$FROM/global.json")
  TABLE=$(python3 -c 'import json, sys
print(next(o["OutputValue"] for o in json.load(open(sys.argv[1]))["Stacks"][0]["Outputs"] if o["OutputKey"] == "CdcTableName"))' "$FROM/global.json")
  for side in primary secondary; do
    region=$PRIMARY
    [ "$side" = secondary ] && region=$SECONDARY
    describe "$REGION_STACK" "$region" >"$FROM/$side.json"
    aws dynamodb describe-table --output json --table-name "$TABLE" --region "$region" >"$FROM/stream-$side.json"
  done
fi

python3 - "$FROM" "$OVERLAY" "$SAM_CONFIG" "${SAM_PARAMS[@]}" <<'PY'
import json, re, sys
from pathlib import Path

source, overlay, sam_config = sys.argv[1:4]
extra = sys.argv[4:]
source, overlay = Path(source), Path(overlay)


def fail(message):
    sys.exit(f"outputs-to-overlay: {message}")


def outputs(name):
    path = source / f"{name}.json"
    if not path.is_file():
        fail(f"{path}: missing (aws cloudformation describe-stacks --output json ...)")
    stacks = json.loads(path.read_text())["Stacks"]
    if len(stacks) != 1:
        fail(f"{path}: {len(stacks)} stacks, expected one")
    stack = stacks[0]
    if not stack.get("StackStatus", "").endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
        fail(f"{path}: stack {stack['StackName']} is {stack.get('StackStatus')}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}, stack


glob, glob_stack = outputs("global")
global_stack = glob_stack["StackName"]
sides, stacks = {}, {}
for side in ("primary", "secondary"):
    out, stack = outputs(side)
    stacks[side] = stack
    want = glob[f"{side.capitalize()}Region"]
    if out["Region"] != want:
        fail(f"{side}.json is stack {stack['StackName']} in {out['Region']}, expected {want}")
    sides[side] = out
for key in ("EventBusName", "DlqQueueName", "OwedQueueName"):
    names = {sides[s][key] for s in sides}
    if len(names) != 1:
        fail(f"{key} differs between the regions ({sorted(names)}): the SAM template and the daemon's role name it once")
    # The daemon's role names them by eda-global's parameters of the same name.
    given = {p["ParameterKey"]: p["ParameterValue"] for p in glob_stack.get("Parameters", [])}
    if (g := given.get(key)) is not None and g not in names:
        fail(f"{key}: the regional stacks created {names.pop()}, but {global_stack}'s role names {g}")

# The role trusts one namespace/service account: the overlay must deploy there.
namespace = re.search(r"^namespace:\s*(\S+)", (overlay / "kustomization.yaml").read_text(), re.M)
trusted_ns, trusted_sa = glob["DaemonServiceAccount"].split("/")
if not namespace or namespace.group(1) != trusted_ns:
    fail(f"{overlay} deploys to namespace {namespace.group(1) if namespace else '(none)'}, "
         f"but {global_stack}'s role trusts only {glob['DaemonServiceAccount']}")

origin = (f"the outputs of {glob_stack['StackName']} ({glob['PrimaryRegion']}) and "
          + " and ".join(sorted({f"{stacks[s]['StackName']}" for s in sides}))
          + f" ({glob['PrimaryRegion']}, {glob['SecondaryRegion']})")
lines = [
    "# The daemon's AWS resources (regions.primary.*, regions.secondary.*), rendered by",
    f"# deploy/aws/outputs-to-overlay.sh from {origin}.",
    "# Do not edit: deploy or change the stacks, then run it again.",
]
for side, out in sides.items():
    prefix = f"EDA_REGIONS__{side.upper()}__"
    lines += [
        f"{prefix}NAME={out['Region']}",
        f"{prefix}CDC_TABLE={glob['CdcTableName']}",
        f"{prefix}METADATA_TABLE={glob['MetadataTableName']}",
        f"{prefix}EVENT_BUS={out['EventBusName']}",
        f"{prefix}DLQ_QUEUE_URL={out['DlqQueueUrl']}",
        f"{prefix}OWED_QUEUE_URL={out['OwedQueueUrl']}",
    ]
(overlay / "aws-resources.env").write_text("\n".join(lines) + "\n")
(overlay / "irsa-patch.yaml").write_text(
    f"# The role {trusted_ns}/{trusted_sa} assumes (IRSA): {global_stack}'s DaemonRoleArn output, rendered by\n"
    "# deploy/aws/outputs-to-overlay.sh. Do not edit: run it again.\n"
    "- op: replace\n"
    "  path: /metadata/annotations/eks.amazonaws.com~1role-arn\n"
    f"  value: {glob['DaemonRoleArn']}\n")
print(f"wrote {overlay}/aws-resources.env and {overlay}/irsa-patch.yaml from {origin}")

if sam_config:
    def quote(value):
        if any(c in value for c in '"\\ '):
            fail(f"SAM parameter value {value!r}: quotes, backslashes and spaces are not supported")
        return f'\\"{value}\\"'
    out = [
        "# deploy/sam's stack in each region, with the names of the data-plane stacks, rendered by",
        f"# deploy/aws/outputs-to-overlay.sh from {origin}.",
        "#   sam deploy --config-env REGION",
        "version = 0.1",
    ]
    for side, region_out in sides.items():
        region = region_out["Region"]
        stream_file = source / f"stream-{side}.json"
        if not stream_file.is_file():
            fail(f"{stream_file}: missing (aws dynamodb describe-table --table-name {glob['CdcTableName']} --region {region})")
        table = json.loads(stream_file.read_text())["Table"]
        if table["TableName"] != glob["CdcTableName"] or f":{region}:" not in table.get("LatestStreamArn", ""):
            fail(f"{stream_file}: not the stream of {glob['CdcTableName']} in {region}")
        params = {
            "PrimaryRegion": glob["PrimaryRegion"],
            "SecondaryRegion": glob["SecondaryRegion"],
            "EventBusName": region_out["EventBusName"],
            "CdcTableStreamArn": table["LatestStreamArn"],
            "DlqQueueName": region_out["DlqQueueName"],
            "OwedQueueName": region_out["OwedQueueName"],
            "JwtSecretName": glob["JwtSecretName"],
            "AlarmTopicArn": region_out["AlarmTopicArn"],
        }
        for item in extra:
            key, _, value = item.partition("=")
            params[key] = value
        overrides = " ".join(f"{k}={quote(v)}" for k, v in params.items())
        out += [
            "",
            f"[{region}.deploy.parameters]",
            'stack_name = "eda-functions"',
            f'region = "{region}"',
            'capabilities = "CAPABILITY_IAM"',
            "resolve_s3 = true",
            f'parameter_overrides = "{overrides}"',
        ]
    Path(sam_config).write_text("\n".join(out) + "\n")
    print(f"wrote {sam_config}: sam deploy --config-env {' | '.join(s['Region'] for s in sides.values())}")
PY
