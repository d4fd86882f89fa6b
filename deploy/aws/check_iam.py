#!/usr/bin/env python3
"""Least privilege, proven: every principal's IAM policy allows exactly what its code calls.

  check_iam.py           check every principal; exit 1 if any policy misses or exceeds its needs
  check_iam.py --list    also print, per principal, each AWS operation the code calls, the IAM
                         action and resource it needs, and the call path from the entry point

The principals are the daemon's IRSA role (deploy/aws/global.yaml) and the five Lambda functions'
roles (deploy/sam/template.yaml). For each one:

1. What the code calls, derived from the source (rust_calls.py): the SDK operations reachable
   from the principal's entry points (a binary's `main`, the daemon commands that run in its
   pod), each charged to the adapter it goes through, which names its resource: the CDC table,
   the metadata table, the bus, the dead-letter queue, the owed queue, the HS256 secret, or none
   (the health probes' List calls). An operation maps to its IAM action (`SendMessageBatch` is
   authorized by `sqs:SendMessage`, `DeleteMessageBatch` by `sqs:DeleteMessage`; every other one
   by `<service>:<Operation>`). Where each resource lives (this region, the primary, both) is
   stated below per principal, with the code that decides it.
2. What the platform does with the principal's credentials (not in eda's code): Lambda writes the
   function's logs, polls the DynamoDB stream and sends to the stream's on-failure queue.
3. What its policy grants, read from the template: every statement of the role's one inline
   policy, its ARNs resolved to those resources (`!Sub` ARNs over the stack's name parameters,
   `!GetAtt` of the stack's own queues and log groups). SAM's generated roles count with the
   managed policies SAM attaches to them.

It fails on any action the code needs that the policy does not grant, any grant the code does not
need (a resource or a region too many), a wildcard action, and `Resource: "*"` for an action IAM
can scope to a resource. Needs PyYAML (deploy venv) and the SDK crates' sources (any cargo build
of the workspace fetched them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rust_calls  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
SAM = "deploy/sam/template.yaml"
GLOBAL = "deploy/aws/global.yaml"
SCANNED = ["actors/src", "lambda-shims/src", "daemon/src"]
AWS_MODULE = "actors/src/aws/"
PORTS_FILE = "actors/src/ports.rs"
SDK_CRATES = {"dynamodb": "aws-sdk-dynamodb", "events": "aws-sdk-eventbridge",
              "sqs": "aws-sdk-sqs", "secretsmanager": "aws-sdk-secretsmanager"}
# The SDK crates name EventBridge `eventbridge`; IAM calls it `events`.
IAM_PREFIX = {"dynamodb": "dynamodb", "eventbridge": "events", "sqs": "sqs",
              "secretsmanager": "secretsmanager"}
# Operations authorized by another operation's action (SQS: "setting permissions for
# SendMessage, DeleteMessage, or ChangeMessageVisibility sets permissions for the corresponding
# batch versions").
# DynamoDB's BatchExecuteStatement has no action of its own: each statement needs the action of
# its PartiQL kind (eda sends INSERT and UPDATE).
ACTION_OF = {"sqs:SendMessageBatch": ("sqs:SendMessage",),
             "sqs:DeleteMessageBatch": ("sqs:DeleteMessage",),
             "sqs:ChangeMessageVisibilityBatch": ("sqs:ChangeMessageVisibility",),
             "dynamodb:BatchExecuteStatement": ("dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate")}
# Actions IAM cannot scope to a resource: their only Resource is "*" (Service Authorization
# Reference: no resource type for ListTables, ListEventBuses, ListQueues).
UNSCOPED = {"dynamodb:ListTables", "events:ListEventBuses", "sqs:ListQueues"}

# The adapters of actors/src/aws/ and the resource each one's calls act on. The RegionConfig
# field is the one its constructor is given (checked at every call site the code reaches).
ADAPTERS = {
    # The table comes with each write: the region's cdc_table (or an apply.table_map target,
    # which deploy/aws/README.md says to add to the role).
    "DynamoDbItemWriter": ("cdc-table", None),
    # The writer's gathering of its writes into BatchExecuteStatement calls (same tables).
    "Batcher": ("cdc-table", None),
    "DynamoDbTableStructures": ("metadata-table", "metadata_table"),
    "EventBridgeClient": ("event-bus", "event_bus"),
    "SqsDeadLetterQueue": ("dlq", "dlq_queue_url"),
    "SqsOwedQueue": ("owed-queue", "owed_queue_url"),
    # The health probes: ListTables, ListEventBuses, ListQueues.
    "RegionClients": ("*", None),
    # jwt.hs256_secret_id.
    "secret_value": ("jwt-secret", None),
}
# The templates' name parameters, and the resource each names.
NAME_PARAMETERS = {
    "CdcTableName": "cdc-table", "MetadataTableName": "metadata-table",
    "EventBusName": "event-bus", "DlqQueueName": "dlq", "OwedQueueName": "owed-queue",
    "JwtSecretName": "jwt-secret",
}
RESOURCE_SERVICE = {"cdc-table": "dynamodb", "metadata-table": "dynamodb", "event-bus": "events",
                    "dlq": "sqs", "owed-queue": "sqs", "jwt-secret": "secretsmanager"}
REGION_TOKENS = {"${AWS::Region}": "home", "${PrimaryRegion}": "primary",
                 "${SecondaryRegion}": "secondary"}
HOME, PRIMARY, BOTH = {"home"}, {"primary"}, {"primary", "secondary"}

# What Lambda itself does with a function's role: the runtime's logs go to the function's log
# group (created by the template, so no logs:CreateLogGroup).
LOGS = [("logs:CreateLogStream", "own-log-group", HOME), ("logs:PutLogEvents", "own-log-group", HOME)]


@dataclass
class Principal:
    name: str
    template: str
    roots: list[tuple[str, str]]
    # Where each resource the code reaches lives, as the code decides it.
    scopes: dict[str, set[str]]
    function: str | None = None  # the SAM function's logical id
    role: str | None = None  # the role's logical id, for a principal that is not a function
    platform: list[tuple[str, str, set[str]]] = field(default_factory=list)
    why: str = ""


PRINCIPALS = [
    Principal(
        "daemon", GLOBAL, role="DaemonRole",
        # `eda-daemon run`, and `eda-daemon dlq redrive`, which operators run in a daemon pod.
        # `jwt verify` is not here: it reads the authorizer's signing key, which the pipeline
        # never needs; operators run it with their own credentials.
        roots=[("daemon/src/commands/run.rs", "run"), ("daemon/src/commands/dlq.rs", "redrive")],
        scopes={
            # pipeline.rs: changes are applied, and dead-lettered, in the primary region, whose
            # metadata_table holds the table structures; redrive.rs: the primary's DLQ.
            "cdc-table": PRIMARY, "metadata-table": PRIMARY, "dlq": PRIMARY,
            # A router per region publishes to its region's bus; each region's events owed while
            # it is down wait in the other region's owed queue (region_router/start.rs).
            "event-bus": BOTH, "owed-queue": BOTH,
        },
    ),
    Principal(
        "stream-processor", SAM, function="StreamProcessor",
        roots=[("lambda-shims/src/bin/stream-processor.rs", "main")],
        # publishing.rs: this region's publisher and DLQ; both regions' routers (their buses and
        # owed queues).
        scopes={"event-bus": BOTH, "dlq": HOME, "owed-queue": BOTH},
        platform=LOGS + [
            # The event source mapping reads the table's stream with the function's role.
            ("dynamodb:DescribeStream", "cdc-stream", HOME),
            ("dynamodb:GetRecords", "cdc-stream", HOME),
            ("dynamodb:GetShardIterator", "cdc-stream", HOME),
            ("dynamodb:ListStreams", "cdc-stream", HOME),
            # ... and sends what it gives up on to the on-failure destination.
            ("sqs:SendMessage", "stream-failure-queue", HOME),
        ],
    ),
    Principal(
        "event-router", SAM, function="EventRouter",
        roots=[("lambda-shims/src/bin/event-router.rs", "main")],
        scopes={"event-bus": BOTH, "dlq": HOME, "owed-queue": BOTH},
        platform=LOGS,
    ),
    Principal(
        "event-transformer", SAM, function="EventTransformer",
        roots=[("lambda-shims/src/bin/event-transformer.rs", "main")],
        scopes={"event-bus": HOME, "dlq": HOME},
        platform=LOGS,
    ),
    Principal(
        "health-checker", SAM, function="HealthChecker",
        roots=[("lambda-shims/src/bin/health-checker.rs", "main")],
        scopes={"event-bus": HOME, "dlq": HOME},
        platform=LOGS,
    ),
    Principal(
        "authorizer", SAM, function="Authorizer",
        roots=[("lambda-shims/src/bin/authorizer.rs", "main")],
        # The secret is replicated into every region; each function reads its own region's.
        scopes={"jwt-secret": HOME},
        platform=LOGS,
    ),
]

# What SAM adds to the role it generates for a function given `Policies:` instead of `Role:`.
SAM_BASIC = [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                             "logs:PutLogEvents"], "Resource": "*"}]
SAM_DYNAMODB_STREAM = [{"Effect": "Allow", "Action": [
    "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
    "dynamodb:ListStreams"], "Resource": "*"}] + SAM_BASIC


# ---- templates ------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: str) -> dict:
    return yaml.load((ROOT / path).read_text(), Loader=CfnLoader)


def as_list(value):
    return value if isinstance(value, list) else [value]


def sub_text(value) -> str | None:
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else None
    return value if isinstance(value, str) else None


class Grants:
    """What one principal's policy grants: {(action, resource, region)}, and the problems met
    reading it."""

    def __init__(self):
        self.grants: set[tuple[str, str, str | None]] = set()
        self.problems: list[str] = []
        self.source = ""


def resolve_resource(value, template: dict, function: str | None) -> tuple[str, str | None] | str:
    """(resource, region) an ARN of a policy names, or a problem."""
    resources = template.get("Resources", {})
    if value == "*":
        return "*", None
    if isinstance(value, dict) and "Ref" in value:
        if value["Ref"] == "CdcTableStreamArn":
            return "cdc-stream", "home"
        return f"unknown resource !Ref {value['Ref']}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        kind = resources.get(logical, {}).get("Type")
        if attribute != "Arn":
            return f"unknown resource !GetAtt {logical}.{attribute}"
        if kind == "AWS::SQS::Queue" and logical == "StreamFailureQueue":
            return "stream-failure-queue", "home"
        if kind == "AWS::Logs::LogGroup":
            name = sub_text(resources[logical]["Properties"].get("LogGroupName"))
            own = function and sub_text(resources[function]["Properties"].get("FunctionName"))
            if own and name == f"/aws/lambda/{own}":
                return "own-log-group", "home"
            return f"log group {logical} (not the function's own)", "home"
        return f"unknown resource !GetAtt {logical}.Arn ({kind})"
    text = sub_text(value)
    if text is None:
        return f"unreadable resource {value!r} (write ARNs as !Sub strings)"
    m = re.fullmatch(r"arn:(?:\$\{AWS::Partition\}|aws):([a-z0-9-]+):(\$\{[\w:]+\}|[a-z0-9-]*):"
                     r"\$\{AWS::AccountId\}:(.+)", text)
    if not m:
        return f"unreadable ARN {text!r}"
    service, region_token, rest = m.groups()
    region = REGION_TOKENS.get(region_token)
    if region is None:
        return f"{text}: region {region_token!r} is none of {', '.join(REGION_TOKENS)}"
    patterns = {
        "sqs": r"\$\{(\w+)\}",
        "events": r"event-bus/\$\{(\w+)\}",
        "dynamodb": r"table/\$\{(\w+)\}",
        "secretsmanager": r"secret:\$\{(\w+)\}-\?\?\?\?\?\?",
    }
    if service in patterns:
        named = re.fullmatch(patterns[service], rest)
        if named and NAME_PARAMETERS.get(named.group(1)):
            resource = NAME_PARAMETERS[named.group(1)]
            if RESOURCE_SERVICE[resource] == service:
                return resource, region
    hint = " (a secret's ARN ends in -?????? after its name)" if service == "secretsmanager" else ""
    return f"{text}: names no resource of eda{hint}"


def statements_of(document) -> list[dict]:
    if isinstance(document, str):
        document = json.loads(document)
    return as_list(document.get("Statement", []))


def read_grants(principal: Principal, template: dict) -> Grants:
    out = Grants()
    resources = template.get("Resources", {})
    statements: list[tuple[str, dict]] = []
    if principal.function:
        props = resources.get(principal.function, {}).get("Properties", {})
        if not props:
            out.problems.append(f"no function {principal.function} in {principal.template}")
            return out
        role = props.get("Role")
        if role is None:
            # SAM generates the role: the statements given, and the managed policies it adds.
            out.source = f"SAM's generated role of {principal.function}"
            for policy in as_list(props.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    statements += [("Policies", s) for s in as_list(policy["Statement"])]
                else:
                    out.problems.append(f"SAM policy {policy!r}: write its statements out")
            events = props.get("Events", {}).values()
            managed = ("AWSLambdaDynamoDBExecutionRole", SAM_DYNAMODB_STREAM) if any(
                e.get("Type") == "DynamoDB" for e in events) else ("AWSLambdaBasicExecutionRole", SAM_BASIC)
            statements += [(f"managed policy {managed[0]} (SAM adds it)", s) for s in managed[1]]
            for e in events:
                dest = e.get("Properties", {}).get("DestinationConfig", {}).get("OnFailure", {})
                if dest.get("Type") == "SQS":
                    statements.append(("SAM's on-failure destination policy", {
                        "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dest["Destination"]}))
            out.problems.append("a role SAM generates carries a managed policy (logs on \"*\"): "
                                "give the function a Role of the template's own")
        else:
            if not (isinstance(role, dict) and "Fn::GetAtt" in role and role["Fn::GetAtt"][1] == "Arn"):
                out.problems.append(f"Role {role!r}: expected !GetAtt <role>.Arn of this template")
                return out
            principal_role = role["Fn::GetAtt"][0]
            statements += role_statements(principal_role, resources, out, LAMBDA_TRUST)
            out.source = f"role {principal_role}"
            if props.get("Policies"):
                out.problems.append("Policies beside Role: SAM ignores them")
    else:
        statements += role_statements(principal.role, resources, out, IRSA_TRUST)
        out.source = f"role {principal.role}"
    for where, statement in statements:
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            out.problems.append(f"{where}: only Allow statements with Action and Resource are expected")
            continue
        for action in as_list(statement.get("Action", [])):
            if "*" in action:
                out.problems.append(f"{where}: wildcard action {action!r}")
                continue
            for resource in as_list(statement.get("Resource", [])):
                resolved = resolve_resource(resource, template, principal.function)
                if isinstance(resolved, str):
                    out.problems.append(f"{where}: {action}: {resolved}")
                    continue
                if resolved[0] == "*" and action not in UNSCOPED:
                    out.problems.append(f"{where}: {action} on \"*\": IAM can scope it to an ARN, and the ARN is known")
                    continue
                out.grants.add((action, resolved[0], resolved[1]))
    return out


# Who may assume each kind of role: Lambda, or the daemon's service account through the cluster's
# OIDC provider (IRSA), with the audience STS expects and nothing broader.
LAMBDA_TRUST = [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                 "Action": "sts:AssumeRole"}]
IRSA_TRUST = [{"Effect": "Allow",
               "Principal": {"Federated": "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/${OidcProvider}"},
               "Action": "sts:AssumeRoleWithWebIdentity",
               "Condition": {"StringEquals": {
                   "${OidcProvider}:sub": "system:serviceaccount:${ServiceAccountNamespace}:${ServiceAccountName}",
                   "${OidcProvider}:aud": "sts.amazonaws.com"}}}]


def trust_problems(logical: str, props: dict, expected: list[dict]) -> list[str]:
    document = props.get("AssumeRolePolicyDocument")
    text = sub_text(document)
    if isinstance(text, str):
        document = json.loads(text)
    if not isinstance(document, dict):
        return [f"{logical}: unreadable AssumeRolePolicyDocument"]
    if as_list(document.get("Statement", [])) != expected:
        return [f"{logical}: trust policy {json.dumps(document.get('Statement'))} is not {json.dumps(expected)}"]
    return []


def role_statements(logical: str, resources: dict, out: Grants, trust: list[dict]) -> list[tuple[str, dict]]:
    role = resources.get(logical)
    if not role or role.get("Type") != "AWS::IAM::Role":
        out.problems.append(f"no AWS::IAM::Role {logical}")
        return []
    props = role["Properties"]
    out.problems += trust_problems(logical, props, trust)
    policies = props.get("Policies", [])
    if props.get("ManagedPolicyArns"):
        out.problems.append(f"{logical}: managed policies {props['ManagedPolicyArns']}: one inline policy only")
    attached = [k for k, r in resources.items() if r.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
                and {"Ref": logical} in as_list(r.get("Properties", {}).get("Roles", []))]
    if attached:
        out.problems.append(f"{logical}: policies attached from outside it ({', '.join(attached)}): one inline policy only")
    if len(policies) != 1:
        out.problems.append(f"{logical}: {len(policies)} inline policies, expected exactly one")
    statements = []
    for policy in policies:
        name = policy.get("PolicyName")
        statements += [(f"{logical} policy {name if isinstance(name, str) else ''}".strip(), s)
                       for s in statements_of(policy["PolicyDocument"])]
    return statements


# ---- what the code needs ----------------------------------------------------------------------


def sdk_operations() -> dict[str, set[str]]:
    """{service as the SDK names it: snake_case operation names} of the SDK crates in
    Cargo.lock, from their sources (one `operation/<name>/` module per operation)."""
    # Only this machine's platform: offline, cargo cannot read the manifests of packages only
    # other platforms use (anstyle-wincon, windows-sys) when nothing built them here, as on a
    # fresh machine.
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    triple = next(line.split(": ", 1)[1] for line in host.splitlines() if line.startswith("host: "))
    meta = subprocess.run(["cargo", "metadata", "--offline", "--format-version", "1", "--locked",
                           "--filter-platform", triple],
                          cwd=ROOT, capture_output=True, text=True)
    if meta.returncode != 0:
        sys.exit(f"cargo metadata failed:\n{meta.stderr}")
    packages = {p["name"]: Path(p["manifest_path"]).parent for p in json.loads(meta.stdout)["packages"]}
    ops = {}
    for crate in SDK_CRATES.values():
        service = crate.removeprefix("aws-sdk-")
        src = packages[crate] / "src" / "operation"
        ops[service] = {p.name for p in src.iterdir() if p.is_dir()}
        if not ops[service]:
            sys.exit(f"{src}: no operations")
    return ops


@dataclass
class Need:
    action: str
    resource: str
    region: str | None
    because: str


def needs(principal: Principal, graph: rust_calls.Graph, crates: rust_calls.Crates, verbose: bool):
    roots = [f for f in crates.fns for file, name in principal.roots if f.file == file and f.name == name]
    problems = []
    if len(roots) != len(principal.roots):
        problems.append(f"entry points {principal.roots}: found {len(roots)} of them")
    order, seen, _ = graph.reach(roots)
    by_key = {(id(f), c): f for f, c in order}
    out: list[Need] = []
    listing = []
    reached_fns = [f for f, _ in order]
    used_kinds = set()
    for fn, ctx in order:
        for call in graph.sdk_calls(fn, ctx):
            operation = f"{IAM_PREFIX[call.service]}:{call.operation}"
            if call.adapter not in ADAPTERS:
                problems.append(f"{fn.file}:{call.line} {operation} is reached outside any adapter of {sorted(ADAPTERS)}")
                continue
            resource = ADAPTERS[call.adapter][0]
            path = []
            key = (id(fn), ctx)
            while key is not None:
                path.append(by_key[key].label)
                key = seen[key]
            because = f"{call.operation} in {call.adapter}"
            for action in ACTION_OF.get(operation, (operation,)):
                if resource == "*":
                    out.append(Need(action, "*", None, because))
                else:
                    used_kinds.add(resource)
                    for region in sorted(principal.scopes.get(resource, set())):
                        out.append(Need(action, resource, region, because))
                listing.append((action, resource, call.operation, " <- ".join(path)))
    for resource in used_kinds - principal.scopes.keys():
        problems.append(f"the code reaches the {resource}; say in check_iam.py where it lives for {principal.name}")
    for resource in principal.scopes.keys() - used_kinds:
        problems.append(f"check_iam.py places the {resource} for {principal.name}, which its code never reaches")
    for adapter, (resource, key) in ADAPTERS.items():
        if key is None:
            continue
        for file, line, names in graph.constructor_keys(reached_fns, adapter):
            if names - {key}:
                problems.append(f"{file}:{line} {adapter}::new is given {sorted(names)}, expected {key}")
    for action, resource, regions in principal.platform:
        for region in sorted(regions):
            out.append(Need(action, resource, region, "the platform"))
    if verbose:
        print(f"\n{principal.name}: what the code calls")
        for action, resource, op, path in sorted(set(listing)):
            print(f"  {action:28} {resource:15} {path}")
    return out, problems


def compare(principal: Principal, need: list[Need], grants: Grants) -> list[str]:
    problems = list(grants.problems)
    wanted = {(n.action, n.resource, n.region) for n in need}
    for n in sorted(need, key=lambda n: (n.action, n.resource, n.region or "")):
        if (n.action, n.resource, n.region) not in grants.grants:
            where = f" in {n.region}" if n.region else ""
            what = '"*"' if n.resource == "*" else f"the {n.resource}"
            problems.append(f"missing: {n.action} on {what}{where} ({n.because})")
    for action, resource, region in sorted(grants.grants - wanted, key=str):
        where = f" in {region}" if region else ""
        what = '"*"' if resource == "*" else f"the {resource}"
        problems.append(f"not needed: {action} on {what}{where}: the code never calls it there")
    return problems


def main(argv) -> int:
    verbose = "--list" in argv
    crates = rust_calls.load(ROOT, SCANNED)
    ports = {t for t, f in crates.traits.items() if f == PORTS_FILE}
    graph = rust_calls.Graph(crates, ports, set(ADAPTERS), AWS_MODULE, sdk_operations())
    failed = False
    stray = graph.stray_sdk_calls()
    for file, line, op in stray:
        print(f"FAIL {file}:{line}: SDK call {op}() outside {AWS_MODULE}: the check cannot charge it to a resource")
        failed = True
    templates = {}
    for principal in PRINCIPALS:
        need, problems = needs(principal, graph, crates, verbose)
        if not (ROOT / principal.template).is_file():
            problems.append(f"no template {principal.template}: nothing grants it anything")
            grants = Grants()
        else:
            template = templates.setdefault(principal.template, load_template(principal.template))
            grants = read_grants(principal, template)
        problems += compare(principal, need, grants)
        name = f"{principal.name} ({grants.source or '-'} in {principal.template})"
        if problems:
            failed = True
            print(f"FAIL {name}")
            for p in problems:
                print(f"  - {p}")
        else:
            actions = sorted({n.action for n in need})
            print(f"ok   {name}: {len(grants.grants)} grants, each one needed: {', '.join(actions)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
