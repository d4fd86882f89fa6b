#!/usr/bin/env python3
"""Checks of deploy/ that need more than one tool's view; deploy/check.sh runs it.

  check.py k8s KUBECTL VALIDATOR DAEMON...   render each overlay, validate it against Kubernetes'
                                             schemas, run `eda-daemon check-config` on its
                                             ConfigMap, and hold its objects to the issue's numbers
  check.py queries                           every query of the dashboard, the alerts and the
                                             autoscalers names metrics and labels of the metrics
                                             reference (docs/metrics.md); docker-compose mounts
                                             what the Prometheus and Grafana files expect

The reference in docs/metrics.md is generated from the daemon's registry and kept current by a
Rust test (actors/src/telemetry/reference.rs), so checking against it is checking against the code.
Needs PyYAML (the deploy venv of deploy/local/install.sh has it). Exits 1 on the first overlay or
file with problems, after printing every problem found in it.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
METRICS_DOC = ROOT / "docs" / "metrics.md"

# Kubernetes version the schemas are taken from (EKS's supported range includes it).
K8S_VERSION = "1.31.0"
# What the image and the manifests agree on (deploy/docker/Dockerfile).
CONFIG_PATH = "/etc/eda/config.toml"
PORT = 9090
UID = 10001
# Seconds the grace period must exceed kafka.drain_timeout_ms by: commit, leave the group, exit.
GRACE_HEADROOM_S = 15
# Overlays, and whether the production numbers apply to them.
OVERLAYS = {"dev": False, "prod": True, "prod-keda": True}
# Series the alerts may use that the daemon does not export (Prometheus, kube-state-metrics).
EXTERNAL_SERIES = {"up", "kube_pod_container_status_restarts_total", "kube_pod_status_ready"}
# Labels a scrape adds to every series.
TARGET_LABELS = {"instance", "job", "namespace", "pod"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}


class Problems(list):
    def expect(self, ok, message):
        if not ok:
            self.append(message)


# ---- the metrics reference ------------------------------------------------------------------


def reference():
    """{query name: (type, labels)} from the generated metrics table of docs/metrics.md."""
    text = METRICS_DOC.read_text()
    start = text.index("<!-- metrics-reference:start -->")
    end = text.index("<!-- metrics-reference:end -->")
    metrics = {}
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`eda_"):
            labels = set(re.findall(r"`([a-z_]+)`", cells[2]))
            metrics[cells[0].strip("`")] = (cells[1].split()[0], labels)
    if not metrics:
        sys.exit("docs/metrics.md: no rows between the metrics-reference markers")
    return metrics


def series_names(metrics):
    """{series name a query may use: labels}; histograms through _bucket, _sum and _count."""
    names = {}
    for name, (kind, labels) in metrics.items():
        if kind == "histogram":
            names[f"{name}_bucket"] = labels | {"le"}
            names[f"{name}_sum"] = labels
            names[f"{name}_count"] = labels
        else:
            names[name] = labels
    return names


def parse_promql(expr):
    """(metric names, label names) a PromQL expression mentions."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors, [$__rate_interval]
    labels = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels |= {l.strip() for l in group.split(",") if l.strip()}
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = match.group(0)
        follows = expr[match.end():].lstrip()[:1]
        if follows == "(" or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"[0-9.e+-]+", word):
            continue
        names.add(word)
    return names, labels


def check_expr(where, expr, known, problems, external=frozenset()):
    names, labels = parse_promql(expr)
    problems.expect(names, f"{where}: names no metric: {expr}")
    allowed = set(TARGET_LABELS)
    for name in names:
        if name in known:
            allowed |= known[name]
        elif name in external:
            return  # kube-state-metrics series carry labels of their own
        else:
            problems.append(f"{where}: {name} is not a metric the daemon exports")
    for label in labels - allowed:
        problems.append(f"{where}: label {label!r} is on none of {sorted(names)}")


def dashboard_exprs(dashboard):
    """(where, expr) of every panel target and query variable, rows' nested panels included."""
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*([a-z_]+)\)", query)
            expr = f"sum by ({inner.group(2)}) ({inner.group(1)})" if inner else query
            yield f"variable {var['name']!r}", expr


def check_queries():
    metrics = reference()
    known = series_names(metrics)
    failed = False
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        problems = Problems()
        dashboard = json.loads(path.read_text())
        exprs = list(dashboard_exprs(dashboard))
        problems.expect(exprs, "no queries")
        for where, expr in exprs:
            check_expr(where, expr, known, problems)
        for where, expr in exprs:
            if "_bucket" in expr:
                problems.expect("histogram_quantile" in expr, f"{where}: buckets without histogram_quantile")
        used = {n for _, e in exprs for n in parse_promql(e)[0]}
        problems.expect(any("histogram_quantile" in e for _, e in exprs), "no latency percentiles")
        for needed in ("eda_kafka_messages_consumed_total", "eda_kafka_consumer_lag_messages",
                       "eda_circuit_breaker_state", "eda_dlq_messages_total", "eda_actor_restarts_total"):
            problems.expect(needed in used, f"no panel shows {needed}")
        failed |= report(path, problems, f"{len(exprs)} queries over {len(used)} metrics")
    rules = DEPLOY / "prometheus" / "alerts.yml"
    problems = Problems()
    count = 0
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            count += 1
            check_expr(f"alert {rule.get('alert')}", rule["expr"], known, problems, EXTERNAL_SERIES)
    failed |= report(rules, problems, f"{count} alert expressions")
    adapter = DEPLOY / "prometheus" / "adapter.yaml"
    problems = Problems()
    for rule in yaml.safe_load(adapter.read_text())["externalRules"]:
        check_expr("externalRules seriesQuery", rule["seriesQuery"], known, problems)
        problems.expect(rule["name"]["as"] in known, f"exposes {rule['name']['as']}, not a daemon metric")
    failed |= report(adapter, problems, "the lag rule")
    return failed | check_compose()


def mounts(service):
    """{container path: host path} of a compose service's bind mounts, relative to deploy/."""
    out = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        out[container] = DEPLOY / host
    return out


def check_compose():
    path = DEPLOY / "docker-compose.yml"
    services = yaml.safe_load(path.read_text())["services"]
    problems = Problems()
    prom = mounts(services["prometheus"])
    config = next((a.split("=", 1)[1] for a in services["prometheus"]["command"]
                   if a.startswith("--config.file=")), "")
    host = next((h / Path(config).relative_to(c) for c, h in prom.items()
                 if Path(config).is_relative_to(c)), None)
    problems.expect(host and host.is_file(), f"Prometheus' {config} is mounted from deploy/")
    if host and host.is_file():
        for rules in yaml.safe_load(host.read_text()).get("rule_files", []):
            problems.expect((host.parent / rules).is_file(), f"rule file {rules} is mounted")
    graf = mounts(services["grafana"])
    provisioning = graf.get("/etc/grafana/provisioning")
    problems.expect(provisioning and provisioning.is_dir(), "Grafana provisioning is mounted")
    if provisioning and provisioning.is_dir():
        for f in (provisioning / "dashboards").glob("*.yml"):
            for provider in yaml.safe_load(f.read_text())["providers"]:
                target = provider["options"]["path"]
                problems.expect(target in graf and list(graf[target].glob("*.json")),
                                f"dashboards path {target} is mounted with dashboards in it")
        sources = [d for f in (provisioning / "datasources").glob("*.yml")
                   for d in yaml.safe_load(f.read_text())["datasources"]]
        uids = {d.get("uid") for d in sources}
        for dash in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
            var = [v for v in json.loads(dash.read_text())["templating"]["list"] if v["type"] == "datasource"]
            problems.expect(var and var[0]["current"]["value"] in uids,
                            f"{dash.name} defaults to a provisioned datasource {sorted(uids)}")
        problems.expect(any(d.get("url") == "http://prometheus:9090" for d in sources),
                        "the datasource points at the compose prometheus service")
    return report(path, problems, "Prometheus and Grafana mounts, rule files and datasource agree")


# ---- Kubernetes -----------------------------------------------------------------------------


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def by_kind(docs):
    out = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def one(kinds, kind, problems):
    found = kinds.get(kind, [])
    problems.expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def pod_env(container, kinds):
    """The pod's EDA_ variables: the rendered ConfigMaps it takes whole (envFrom), then its own
    `env`; a Secret's value is replaced by a placeholder."""
    env = {}
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in kinds.get("ConfigMap", [])}
    for source in container.get("envFrom", []):
        env.update(maps.get(source.get("configMapRef", {}).get("name"), {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            env[var["name"]] = f"placeholder-for-secret-{var['valueFrom']['secretKeyRef']['name']}"
    return env


def check_config(daemon, config_toml, container, kinds, problems):
    """`eda-daemon check-config` on the ConfigMap's TOML with the pod's environment (and none of
    the caller's EDA_ variables); returns the effective configuration it prints."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config_toml)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDA_")}
        env.update(pod_env(container, kinds))
        result = run(daemon + ["check-config", "--config", f.name], env=env)
    finally:
        os.unlink(f.name)
    problems.expect(result.returncode == 0, f"eda-daemon check-config failed:\n{result.stderr}{result.stdout}")
    if result.returncode != 0:
        return None
    return tomllib.loads(result.stdout)


def check_env_from(container, kinds, problems):
    """The ConfigMaps the pod takes as environment are rendered, and hold only EDA_ variables
    (anything else is not configuration, and an unknown EDA_ key stops the daemon, which
    check-config then reports)."""
    names = {m["metadata"]["name"]: m.get("data", {}) for m in kinds.get("ConfigMap", [])}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        problems.expect(ref in names, f"envFrom ConfigMap {ref} is rendered")
        stray = [k for k in names.get(ref, {}) if not k.startswith("EDA_")]
        problems.expect(not stray, f"envFrom ConfigMap {ref} holds only EDA_ variables: {stray}")


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_deployment(deploy, kinds, config, strict, problems):
    spec = deploy.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    containers = pod.get("containers", [])
    problems.expect(len(containers) == 1, "the pod has one container")
    c = containers[0] if containers else {}
    problems.expect(c.get("args") == ["run", "--config", CONFIG_PATH], f"args are run --config {CONFIG_PATH}")
    if strict:
        problems.expect(spec.get("replicas") == 3, "3 replicas")
        res = c.get("resources", {})
        problems.expect(res.get("requests") == {"cpu": "500m", "memory": "512Mi"}, f"requests 500m/512Mi: {res.get('requests')}")
        problems.expect(res.get("limits") == {"cpu": "2", "memory": "2Gi"}, f"limits 2/2Gi: {res.get('limits')}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        problems.expect(get.get("path") == path, f"{probe} on {path}")
        problems.expect(resolve_port(c, get.get("port")) == PORT, f"{probe} on port {PORT}")
    problems.expect(pod.get("enableServiceLinks") is False,
                    "enableServiceLinks: false (service links inject EDA_* variables the config rejects)")
    sec = pod.get("securityContext", {})
    problems.expect(sec.get("runAsNonRoot") is True and sec.get("runAsUser") == UID,
                    f"runs as non-root uid {UID}, the image's user")
    zones = [t for t in pod.get("topologySpreadConstraints", [])
             if t.get("topologyKey") == "topology.kubernetes.io/zone"]
    problems.expect(zones, "spread across topology.kubernetes.io/zone")
    for t in zones:
        selector = t.get("labelSelector", {}).get("matchLabels", {})
        pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
        problems.expect(selector and selector.items() <= pod_labels.items(), "zone spread selects the pods")
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
    problems.expect(annotations.get("prometheus.io/scrape") == "true", "pods annotated for scraping")
    problems.expect(annotations.get("prometheus.io/port") == str(PORT), f"scrape port {PORT}")
    problems.expect(annotations.get("prometheus.io/path") == "/metrics", "scrape path /metrics")
    # The ConfigMap is mounted where the args say.
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    maps = {v["name"]: v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
    mounted = [maps[n] for n, path in mounts.items() if n in maps and path == str(Path(CONFIG_PATH).parent)]
    names = [m["metadata"]["name"] for m in kinds.get("ConfigMap", [])]
    problems.expect(len(mounted) == 1 and mounted[0] in names, f"the ConfigMap is mounted at {Path(CONFIG_PATH).parent}")
    problems.expect(deploy["spec"]["template"]["spec"].get("serviceAccountName")
                    in [s["metadata"]["name"] for s in kinds.get("ServiceAccount", [])],
                    "the pod runs as the ServiceAccount")
    if config is None:
        return
    drain_s = config["kafka"]["drain_timeout_ms"] / 1000
    grace = pod.get("terminationGracePeriodSeconds", 30)
    problems.expect(grace >= drain_s + GRACE_HEADROOM_S,
                    f"terminationGracePeriodSeconds {grace} >= drain_timeout {drain_s:g} s + {GRACE_HEADROOM_S} s")
    listen = config["http"]["listen"]
    problems.expect(listen == f"0.0.0.0:{PORT}", f"http.listen is 0.0.0.0:{PORT}, not {listen}")


def check_autoscaling(kinds, deploy, config, strict, problems, metrics):
    name = deploy.get("metadata", {}).get("name")
    hpas, scaled = kinds.get("HorizontalPodAutoscaler", []), kinds.get("ScaledObject", [])
    problems.expect(len(hpas) + len(scaled) == 1, f"one autoscaler (HPA or ScaledObject), found {len(hpas) + len(scaled)}")
    for hpa in hpas:
        spec = hpa["spec"]
        problems.expect(spec["scaleTargetRef"].get("name") == name, "the HPA scales the Deployment")
        if strict:
            problems.expect((spec.get("minReplicas"), spec.get("maxReplicas")) == (3, 10), "HPA 3-10")
        resources = {m["resource"]["name"]: m["resource"]["target"].get("averageUtilization")
                     for m in spec.get("metrics", []) if m["type"] == "Resource"}
        problems.expect(resources == {"cpu": 70, "memory": 80}, f"HPA on CPU 70 % and memory 80 %: {resources}")
        external = [m["external"]["metric"]["name"] for m in spec.get("metrics", []) if m["type"] == "External"]
        problems.expect(external == ["eda_kafka_consumer_lag_messages"], f"HPA on the lag metric: {external}")
        problems.expect(all(e in metrics for e in external), "the External metric is one the daemon exports")
    for so in scaled:
        # No schema exists for KEDA's CRDs here: check the fields KEDA requires by hand.
        spec = so.get("spec", {})
        problems.expect(so.get("apiVersion") == "keda.sh/v1alpha1", "ScaledObject is keda.sh/v1alpha1")
        problems.expect(spec.get("scaleTargetRef", {}).get("name") == name, "the ScaledObject scales the Deployment")
        if strict:
            problems.expect((spec.get("minReplicaCount"), spec.get("maxReplicaCount")) == (3, 10), "ScaledObject 3-10")
        triggers = spec.get("triggers", [])
        problems.expect(all("type" in t and isinstance(t.get("metadata"), dict) for t in triggers),
                        "every trigger has a type and metadata")
        by_type = {t.get("type"): t for t in triggers}
        problems.expect(by_type.get("cpu", {}).get("metadata", {}).get("value") == "70", "cpu trigger at 70")
        problems.expect(by_type.get("memory", {}).get("metadata", {}).get("value") == "80", "memory trigger at 80")
        kafka = by_type.get("kafka", {})
        meta = kafka.get("metadata", {})
        problems.expect(str(meta.get("lagThreshold", "")).isdigit(), "kafka trigger has a numeric lagThreshold")
        if config is not None:
            problems.expect(meta.get("bootstrapServers") == config["kafka"]["brokers"], "kafka trigger brokers = kafka.brokers")
            problems.expect(meta.get("consumerGroup") == config["kafka"]["group_id"], "kafka trigger group = kafka.group_id")
            problems.expect(meta.get("topic") in config["kafka"]["topics"], "kafka trigger topic is in kafka.topics")
        auth = kafka.get("authenticationRef", {}).get("name")
        problems.expect(auth in [t["metadata"]["name"] for t in kinds.get("TriggerAuthentication", [])],
                        f"TriggerAuthentication {auth} is rendered")


def check_overlay(overlay, strict, kubectl, validator, daemon, metrics):
    problems = Problems()
    path = DEPLOY / "k8s" / "overlays" / overlay
    rendered = run([kubectl, "kustomize", str(path)])
    if rendered.returncode != 0:
        problems.append(f"kubectl kustomize failed: {rendered.stderr}")
        return report(path, problems, "")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(rendered.stdout)
    try:
        valid = run([validator, "--strict", "--quiet", "-k", K8S_VERSION, f.name])
    finally:
        os.unlink(f.name)
    problems.expect(valid.returncode == 0, f"kubernetes-validate {K8S_VERSION} --strict:\n{valid.stdout}{valid.stderr}")
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = by_kind(docs)
    for doc in docs:
        meta = doc.get("metadata", {})
        problems.expect(doc.get("apiVersion") and doc.get("kind") and meta.get("name"),
                        f"{doc.get('kind')} has apiVersion, kind and name")
        problems.expect(meta.get("namespace"), f"{doc.get('kind')}/{meta.get('name')} has a namespace")
    deploy = one(kinds, "Deployment", problems)
    sa = one(kinds, "ServiceAccount", problems)
    role = sa.get("metadata", {}).get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
    problems.expect(re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role), f"IRSA role-arn annotation: {role!r}")
    service = one(kinds, "Service", problems)
    ports = service.get("spec", {}).get("ports", [])
    problems.expect([(p.get("port"), p.get("targetPort")) for p in ports] == [(PORT, "http")], f"Service port {PORT} -> http")
    configs = [m for m in kinds.get("ConfigMap", []) if Path(CONFIG_PATH).name in m.get("data", {})]
    problems.expect(len(configs) == 1, f"one ConfigMap holds {Path(CONFIG_PATH).name}, found {len(configs)}")
    toml_text = configs[0]["data"][Path(CONFIG_PATH).name] if configs else None
    containers = deploy.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    check_env_from(containers[0], kinds, problems)
    config = check_config(daemon, toml_text, containers[0], kinds, problems) if toml_text else None
    check_deployment(deploy, kinds, config, strict, problems)
    pdbs = kinds.get("PodDisruptionBudget", [])
    if strict:
        problems.expect([p["spec"].get("minAvailable") for p in pdbs] == [1], "a PodDisruptionBudget with minAvailable 1")
    check_autoscaling(kinds, deploy, config, strict, problems, metrics)
    summary = ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items()))
    return report(path, problems, f"{summary}; check-config passed" if config else summary)


def check_dockerfile():
    path = DEPLOY / "docker" / "Dockerfile"
    text = path.read_text()
    problems = Problems()
    problems.expect(re.search(rf"^EXPOSE {PORT}$", text, re.M), f"EXPOSE {PORT}")
    problems.expect(re.search(rf"^USER {UID}:{UID}$", text, re.M), f"USER {UID}:{UID}")
    problems.expect(f'CMD ["run", "--config", "{CONFIG_PATH}"]' in text, f"CMD run --config {CONFIG_PATH}")
    problems.expect(len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage")
    return report(path, problems, "port, user and config path agree with deploy/k8s")


def report(path, problems, summary):
    name = Path(path).relative_to(ROOT)
    if problems:
        print(f"FAIL {name}")
        for p in problems:
            print(f"  - {p}")
        return True
    print(f"ok   {name}: {summary}")
    return False


def main(argv):
    if argv[:1] == ["queries"]:
        return 1 if check_queries() else 0
    if argv[:1] == ["k8s"] and len(argv) >= 4:
        kubectl, validator, daemon = argv[1], argv[2], argv[3:]
        metrics = reference()
        failed = check_dockerfile()
        for overlay, strict in OVERLAYS.items():
            failed |= check_overlay(overlay, strict, kubectl, validator, daemon, metrics)
        return 1 if failed else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
