#!/usr/bin/env bash
# Checks the monitoring component (deploy/kubernetes/components/monitoring):
#
#  1. the alert rules: the `spec` of every PrometheusRule the component lists
#     is extracted into a rules file and checked with `promtool check rules`;
#     every alert has `for`, a severity, a summary, a description and a
#     runbook_url whose anchor is a heading of docs/operations.md;
#  2. the unit tests of deploy/observability/alerts.test.yml (`promtool test rules`);
#  3. the Grafana dashboard: valid JSON, a `datasource` variable of type
#     prometheus, every panel with a datasource and targets, and every query
#     parses as PromQL (Grafana's variables replaced);
#  4. every `hostaway_*` metric a rule or the dashboard names is one the
#     services register (crates/*/src/metrics.rs);
#  5. when kubectl is here: the component renders with kustomize, and its
#     custom resources validate against the vendored CRDs
#     (deploy/kubernetes/crds/, unknown fields refused).
#
# Needs python3 with PyYAML, and promtool (Debian's `prometheus` package;
# installed here when missing if we are root with apt-get, or set PROMTOOL).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
component="$root/deploy/kubernetes/components/monitoring"
tests="$root/deploy/observability/alerts.test.yml"
runbook="$root/docs/operations.md"
crds="$root/deploy/kubernetes/crds"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || fail "python3 is required"
python3 -c 'import yaml' 2>/dev/null || fail "python3's PyYAML is required (apt-get install python3-yaml, or pip install pyyaml)"

promtool="${PROMTOOL:-}"
if [[ -z "$promtool" ]]; then
    if command -v promtool >/dev/null; then
        promtool="$(command -v promtool)"
    elif [[ -x /usr/bin/promtool ]]; then
        promtool=/usr/bin/promtool
    elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        say "promtool is missing: installing Debian's prometheus package"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
        promtool="$(command -v promtool)" || fail "the prometheus package brought no promtool"
    else
        fail "promtool not found: install Debian's prometheus package (apt-get install --no-install-recommends prometheus) or set PROMTOOL=/path/to/promtool"
    fi
fi
[[ -x "$promtool" ]] || fail "PROMTOOL=$promtool is not executable"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/unit"

# --- 1. extract the rules ----------------------------------------------------
say "extracting the PrometheusRules of ${component#"$root"/}"
python3 - "$component" "$tmp" "$tests" <<'PY'
import copy, os, sys, yaml

component, tmp, tests = sys.argv[1:4]
with open(os.path.join(component, "kustomization.yaml")) as f:
    kustomization = yaml.safe_load(f)
groups, rules = [], 0
for resource in kustomization.get("resources", []):
    path = os.path.join(component, resource)
    if os.path.isdir(path):
        sys.exit(f"{resource}: a directory resource; list the rule files themselves")
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "PrometheusRule":
                spec = doc.get("spec") or {}
                groups.extend(spec.get("groups") or [])
                rules += 1
if not rules:
    sys.exit("the component lists no PrometheusRule")
with open(os.path.join(tmp, "hostaway-connector.rules.yml"), "w") as f:
    yaml.safe_dump({"groups": groups}, f, sort_keys=False)

# For the unit tests: the same rules without annotations (promtool compares
# them verbatim; their templates are checked by `promtool check rules`).
bare = copy.deepcopy(groups)
for group in bare:
    for rule in group.get("rules", []):
        rule.pop("annotations", None)
with open(os.path.join(tmp, "unit", "hostaway-connector.rules.yml"), "w") as f:
    yaml.safe_dump({"groups": bare}, f, sort_keys=False)
with open(tests) as f:
    suite = yaml.safe_load(f)
if suite.get("rule_files") != ["hostaway-connector.rules.yml"]:
    sys.exit(f"{tests}: rule_files must be [hostaway-connector.rules.yml] (the extracted rules)")
with open(os.path.join(tmp, "unit", "alerts.test.yml"), "w") as f:
    yaml.safe_dump(suite, f, sort_keys=False)
alerts = sum(1 for g in groups for r in g.get("rules", []) if "alert" in r)
print(f"    {rules} PrometheusRule(s), {len(groups)} groups, {alerts} alerts")
PY

say "promtool check rules"
"$promtool" check rules "$tmp/hostaway-connector.rules.yml"

# --- 1b. labels, annotations, runbook anchors ----------------------------------
say "every alert: for, severity, summary, description, a runbook_url into docs/operations.md"
python3 - "$tmp/hostaway-connector.rules.yml" "$runbook" <<'PY'
import re, sys, yaml

rules_file, runbook = sys.argv[1:3]
PREFIX = "https://github.com/tvl/hostaway-connector/blob/main/docs/operations.md#"

def github_anchor(heading, seen):
    """GitHub's heading anchors: the text (links' text, no backticks),
    lowercased, punctuation removed, spaces to hyphens; repeats get -1, -2."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"

anchors, seen, fenced = set(), {}, False
with open(runbook) as f:
    for line in f:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            anchors.add(github_anchor(m.group(1), seen))

problems = []
with open(rules_file) as f:
    groups = yaml.safe_load(f)["groups"]
names = set()
for group in groups:
    for rule in group["rules"]:
        if "alert" not in rule:
            continue
        name = rule["alert"]
        if name in names:
            problems.append(f"{name}: defined twice")
        names.add(name)
        if "for" not in rule:
            problems.append(f"{name}: no `for`")
        if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{name}: severity must be critical, warning or info")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key):
                problems.append(f"{name}: no {key} annotation")
        url = annotations.get("runbook_url", "")
        if url and not url.startswith(PREFIX):
            problems.append(f"{name}: runbook_url must start with {PREFIX}")
        elif url and url[len(PREFIX):] not in anchors:
            problems.append(f"{name}: runbook anchor #{url[len(PREFIX):]} is no heading of docs/operations.md")
if problems:
    sys.exit("\n".join(problems))
print(f"    {len(names)} alerts, every runbook anchor found")
PY

# --- 2. unit tests -----------------------------------------------------------
say "promtool test rules ${tests#"$root"/}"
"$promtool" test rules "$tmp/unit/alerts.test.yml"

# --- 3. the dashboard, 4. metric names ---------------------------------------
say "the Grafana dashboard, and every metric named is exported"
python3 - "$component" "$tmp" "$root" <<'PY'
import glob, json, os, re, sys, yaml

component, tmp, root = sys.argv[1:4]
problems = []

# Dashboards: the JSON files the component's configMapGenerator carries.
with open(os.path.join(component, "kustomization.yaml")) as f:
    kustomization = yaml.safe_load(f)
dashboards = []
for generator in kustomization.get("configMapGenerator", []):
    if generator.get("options", {}).get("labels", {}).get("grafana_dashboard") != "1":
        problems.append(f"configMap {generator.get('name')}: no grafana_dashboard: \"1\" label")
    if not generator.get("options", {}).get("disableNameSuffixHash"):
        problems.append(f"configMap {generator.get('name')}: disableNameSuffixHash is not set")
    for entry in generator.get("files", []):
        dashboards.append(os.path.join(component, entry.split("=", 1)[-1]))
if not dashboards:
    problems.append("the component carries no dashboard")

queries = []  # (where, expr)
for path in dashboards:
    name = os.path.relpath(path, root)
    try:
        with open(path) as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as error:
        problems.append(f"{name}: {error}")
        continue
    if not isinstance(dashboard.get("schemaVersion"), int) or dashboard["schemaVersion"] < 36:
        problems.append(f"{name}: schemaVersion missing or older than 36")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append(f"{name}: no `datasource` variable of type datasource, query prometheus")
    panels = []
    def walk(items):
        for panel in items:
            panels.append(panel)
            walk(panel.get("panels", []))
    walk(dashboard.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        problems.append(f"{name}: panel ids repeat")
    for panel in panels:
        title = panel.get("title", "?")
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{name}: panel '{title}': datasource is not ${{datasource}}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{name}: panel '{title}': no targets")
        for target in targets:
            if not target.get("expr"):
                problems.append(f"{name}: panel '{title}' target {target.get('refId')}: no expr")
                continue
            if target.get("datasource", panel.get("datasource", {})).get("uid") != "${datasource}":
                problems.append(f"{name}: panel '{title}' target {target.get('refId')}: datasource is not ${{datasource}}")
            queries.append((f"{name}: panel '{title}' {target.get('refId')}", target["expr"]))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            queries.append((f"{name}: annotation '{annotation.get('name')}'", annotation["expr"]))
    print(f"    {name}: {sum(1 for p in panels if p.get('type') != 'row')} panels, {len(queries)} queries")

# The dashboard's queries as recording rules, Grafana's variables replaced, for promtool to parse.
def concrete(expr):
    expr = re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)
with open(os.path.join(tmp, "dashboard-queries.rules.yml"), "w") as f:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": concrete(expr)} for i, (_, expr) in enumerate(queries)
    ]}]}, f, sort_keys=False)

# Metric names the services register: every metric is created in a
# crates/*/src/metrics.rs module.
exported = set()
for path in glob.glob(os.path.join(root, "crates", "*", "src", "metrics.rs")):
    with open(path) as f:
        exported.update(re.findall(r'"(hostaway_[a-z0-9_]+)"', f.read()))
if not exported:
    sys.exit("no metric found in crates/*/src/metrics.rs")

def unknown(expr):
    missing = set()
    for name in set(re.findall(r"\bhostaway_[a-z0-9_]+", expr)):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in exported and base not in exported:
            missing.add(name)
    return missing

with open(os.path.join(tmp, "hostaway-connector.rules.yml")) as f:
    for group in yaml.safe_load(f)["groups"]:
        for rule in group["rules"]:
            for name in unknown(rule["expr"]):
                problems.append(f"rule {rule.get('alert') or rule.get('record')}: {name} is no metric the services export")
for where, expr in queries:
    for name in unknown(expr):
        problems.append(f"{where}: {name} is no metric the services export")

if problems:
    sys.exit("\n".join(problems))
PY
"$promtool" check rules "$tmp/dashboard-queries.rules.yml" >/dev/null \
    || { "$promtool" check rules "$tmp/dashboard-queries.rules.yml"; fail "a dashboard query does not parse"; }
echo "    every dashboard query parses; every metric named is registered in crates/*/src/metrics.rs"

# --- 5. render, and validate against the vendored CRDs -------------------------
if command -v kubectl >/dev/null; then
    say "kubectl kustomize (the component in an empty kustomization), CRD schemas"
    # kustomize takes a component by relative path: a copy beside a kustomization.
    mkdir -p "$tmp/render"
    cp -R "$component" "$tmp/render/monitoring"
    cat >"$tmp/render/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: hostaway-check
components:
  - monitoring
EOF
    kubectl kustomize "$tmp/render" >"$tmp/rendered.yaml"
    python3 - "$tmp/rendered.yaml" "$crds" <<'PY'
import glob, os, sys, yaml

rendered, crds = sys.argv[1:3]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
expected = {"PrometheusRule", "PodMonitor", "ConfigMap"}
if {d["kind"] for d in docs} != expected:
    sys.exit(f"rendered kinds {kinds}, expected one each of {sorted(expected)}")
cm = next(d for d in docs if d["kind"] == "ConfigMap")
if cm["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
    sys.exit("the dashboard ConfigMap lost its grafana_dashboard label")
print("    rendered:", ", ".join(kinds))

try:
    import jsonschema
except ImportError:
    print("    python3 jsonschema is not installed: custom resources NOT validated against their CRDs")
    sys.exit(0)

schemas = {}
for path in glob.glob(os.path.join(crds, "*.yaml")):
    for crd in yaml.safe_load_all(open(path)):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]

def strict(schema):
    """Kubernetes' structural schema as JSON Schema: unknown fields refused."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out

for doc in docs:
    key = (doc["apiVersion"], doc["kind"])
    if doc["kind"] == "ConfigMap":
        continue
    if key not in schemas:
        sys.exit(f"{doc['kind']}/{doc['metadata']['name']}: no CRD for {key} in {crds}")
    schema = strict(schemas[key])
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        sys.exit("\n".join(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors))
    print(f"    {doc['kind']}/{doc['metadata']['name']}: valid against {key[0]} {key[1]}")
PY
else
    say "kubectl not found: the component's rendering and CRD validation were SKIPPED"
fi

say "monitoring checks passed"
