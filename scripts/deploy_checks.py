#!/usr/bin/env python3
"""Checks the deployment artefacts offline: the Dockerfile, the kustomize
overlays, every rendered manifest against its schema, and the manifests
against the binaries they run.

Run it through scripts/check-deploy.sh, after `cargo build --bins` (the debug
binaries in $CARGO_TARGET_DIR/debug are run: their --help, and each
Deployment's binary started locally with the Deployment's environment).

  (a) hadolint Dockerfile
  (b) kubectl kustomize of each overlay
  (c) kubernetes-validate --strict on every built-in kind (no network)
  (d) every custom resource against its CRD's openAPIV3Schema, unknown
      fields refused; a custom kind without a CRD fails
  (e) the manifests against the binaries: every env var a Deployment or the
      Job sets is one its binary accepts (--help), every port a probe, a
      Service or a NetworkPolicy names is declared and is the one the
      container's env makes it listen on, the grace period covers preStop +
      drain, the pods are hardened, autoscalers and budgets target what
      exists; then each overlay's provision Job runs for real (migrate,
      streams provision) against a fresh database and NATS namespace, each
      Deployment's binary starts with its env, answers every probe path, gets
      ready, answers its Ingress path, and exits on SIGTERM within
      SHUTDOWN_TIMEOUT_SECS.

Needs python3 with PyYAML and jsonschema, kubectl (kustomize), hadolint,
kubernetes-validate, psql, PostgreSQL and NATS with JetStream.

Environment: CARGO_TARGET_DIR (default ~/.cache/hostaway-connector/target),
KUBERNETES_CRDS_DIR (default ../shared/reference/kubernetes-crds beside the
repository), KUBERNETES_VERSION (schemas of kubernetes-validate, default
1.31.0), TEST_DATABASE_URL (server where a scratch database is made, default
postgres://postgres@127.0.0.1:5432/postgres), TEST_NATS_URL (default
nats://127.0.0.1:4222), DEPLOY_CHECK_DEADLINE_SECS (how long a binary may
take to answer and get ready, default 60).
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

try:
    import jsonschema
    import yaml
except ImportError as missing:  # pragma: no cover
    sys.exit(f"deploy_checks.py needs PyYAML and jsonschema ({missing}): pip install pyyaml jsonschema")

REPO = Path(__file__).resolve().parent.parent
KUBE = REPO / "deploy" / "kubernetes"
OVERLAYS = ["dev", "prod"]
BINARIES = ["webhook-gateway", "booking-ingestor", "sync-dispatcher", "hostaway-admin-api", "hostaway-admin"]
K8S_VERSION = os.environ.get("KUBERNETES_VERSION", "1.31.0")
DEADLINE = float(os.environ.get("DEPLOY_CHECK_DEADLINE_SECS", "60"))
# What the binaries do after their drain deadline: flush NATS for at most 2 s
# (service-kit's shutdown::FLUSH_TIMEOUT).
FLUSH_SECS = 2

# API groups served by Kubernetes itself (kubernetes-validate has their
# schemas); every other group is a custom resource and needs a CRD.
BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
    "authentication.k8s.io", "authorization.k8s.io", "certificates.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io", "networking.k8s.io",
    "node.k8s.io", "rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io",
    "storage.k8s.io", "storagemigration.k8s.io",
}

# What deploy/README.md applies before everything else (kubectl apply -l).
STAGE_TEXT = "app.kubernetes.io/component in (configuration,network-policy,provision)"
PROVISION_STAGE = {
    "matchExpressions": [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["configuration", "network-policy", "provision"]}
    ]
}

# Local stand-ins for the values the manifests take from Secrets, by env var.
# Anything else read from a Secret has no stand-in and fails the check.
STANDIN_ENV = {"DATABASE_URL", "NATS_URL", "CONNECTOR_CREDENTIALS_KEY", "CONNECTOR_CREDENTIALS_KEY_PREVIOUS"}


# --------------------------------------------------------------------------
# Reporting


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passes: list[str] = []
        self.notes: list[str] = []

    def ok(self, what: str) -> None:
        self.passes.append(what)
        print(f"  ok    {what}", flush=True)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"  FAIL  {what}", flush=True)

    def note(self, what: str) -> None:
        self.notes.append(what)
        print(f"  note  {what}", flush=True)

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)


R = Report()


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --------------------------------------------------------------------------
# Rendering and helpers over the rendered documents


def api_group(doc: dict) -> tuple[str, str]:
    api = doc.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    return group, version


def is_builtin(doc: dict) -> bool:
    return api_group(doc)[0] in BUILTIN_GROUPS


def ident(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against labels."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_labels(doc: dict) -> dict:
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return doc["spec"]["template"].get("metadata", {}).get("labels", {})


def containers(doc: dict) -> list[tuple[str, dict]]:
    spec = pod_spec(doc) or {}
    return [("init", c) for c in spec.get("initContainers") or []] + [
        ("main", c) for c in spec.get("containers") or []
    ]


def binary_of(container: dict) -> str | None:
    command = container.get("command") or []
    if command:
        return Path(command[0]).name
    image = container.get("image", "")
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def resolve_env(doc: dict, container: dict, docs: list[dict]) -> tuple[dict, list[str]]:
    """name -> (source, detail). Env entries override envFrom, as in Kubernetes."""
    problems: list[str] = []
    resolved: dict[str, tuple] = {}
    namespace = doc.get("metadata", {}).get("namespace")
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            cm = next(
                (
                    d for d in docs
                    if d.get("kind") == "ConfigMap"
                    and d["metadata"]["name"] == ref["name"]
                    and d["metadata"].get("namespace") == namespace
                ),
                None,
            )
            if cm is None:
                if not ref.get("optional"):
                    problems.append(f"envFrom ConfigMap {ref['name']} is not in the rendered overlay")
                continue
            for key, value in (cm.get("data") or {}).items():
                resolved[prefix + key] = ("value", value)
        elif "secretRef" in source:
            problems.append(
                f"envFrom Secret {source['secretRef'].get('name')}: its keys cannot be checked; reference them one by one"
            )
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            resolved[name] = ("value", entry["value"])
        elif "valueFrom" in entry:
            vf = entry["valueFrom"]
            if "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                resolved[name] = ("secret", ref["name"], ref["key"], bool(ref.get("optional")))
            elif "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                cm = next(
                    (d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == ref["name"]),
                    None,
                )
                value = (cm or {}).get("data", {}).get(ref["key"])
                if value is None and not ref.get("optional"):
                    problems.append(f"{name}: ConfigMap {ref['name']} key {ref['key']} is not in the rendered overlay")
                resolved[name] = ("value", value)
            else:
                resolved[name] = ("field", json.dumps(vf))
        else:
            resolved[name] = ("value", "")
    return resolved, problems


def declared_ports(container: dict) -> dict:
    """name or number (as str) -> containerPort."""
    ports = {}
    for port in container.get("ports") or []:
        ports[str(port["containerPort"])] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def listen_port(value: str) -> int | None:
    match = re.fullmatch(r"\[?[^\]]*\]?:(\d+)", value or "")
    return int(match.group(1)) if match else None


def probes(container: dict) -> list[tuple[str, dict]]:
    return [
        (kind, container[kind])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    ]


# --------------------------------------------------------------------------
# The binaries' --help


def target_dir() -> Path:
    configured = os.environ.get("CARGO_TARGET_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "hostaway-connector" / "target"
    return path if path.is_absolute() else REPO / path


def binary_path(name: str) -> Path:
    return target_dir() / "debug" / name


_HELP_CACHE: dict[tuple, set[str]] = {}


def accepted_env(binary: str, args: list[str]) -> set[str]:
    """Env vars the binary accepts for these args: the top-level --help and
    that of each subcommand on the way (flags in args are skipped)."""
    path = [a for a in args if not a.startswith("-")]
    names: set[str] = set()
    for depth in range(len(path) + 1):
        key = (binary, tuple(path[:depth]))
        if key not in _HELP_CACHE:
            out = run(
                [str(binary_path(binary)), *path[:depth], "--help"],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())},
                timeout=30,
            )
            if out.returncode != 0:
                raise RuntimeError(f"{binary} {' '.join(path[:depth])} --help failed: {out.stderr.strip()}")
            _HELP_CACHE[key] = set(re.findall(r"\[env: ([A-Za-z0-9_]+)", out.stdout))
        names |= _HELP_CACHE[key]
    return names


# --------------------------------------------------------------------------
# (a) hadolint, (b) kustomize, (c) kubernetes-validate


def check_dockerfile() -> None:
    R.section("(a) hadolint Dockerfile")
    out = run(["hadolint", "Dockerfile"], cwd=REPO)
    if out.returncode == 0 and not out.stdout.strip():
        R.ok("hadolint Dockerfile: clean")
    else:
        R.fail(f"hadolint Dockerfile:\n{out.stdout}{out.stderr}")


def render(work: Path) -> dict[str, list[dict]]:
    R.section("(b) kubectl kustomize")
    rendered = {}
    for overlay in OVERLAYS:
        out = run(["kubectl", "kustomize", str(KUBE / "overlays" / overlay)])
        if out.returncode != 0:
            R.fail(f"kubectl kustomize overlays/{overlay}: {out.stderr.strip()}")
            continue
        (work / f"{overlay}.yaml").write_text(out.stdout)
        docs = load_docs(out.stdout)
        rendered[overlay] = docs
        R.ok(f"overlays/{overlay}: {len(docs)} objects ({work / (overlay + '.yaml')})")
    examples = []
    for path in sorted((KUBE / "examples").glob("*.y*ml")):
        examples.extend(load_docs(path.read_text()))
    if examples:
        rendered["examples"] = examples
    return rendered


def check_builtin(work: Path, rendered: dict[str, list[dict]]) -> None:
    R.section(f"(c) kubernetes-validate --strict, Kubernetes {K8S_VERSION}")
    for name, docs in rendered.items():
        builtin = [d for d in docs if is_builtin(d)]
        path = work / f"{name}.builtin.yaml"
        path.write_text(yaml.safe_dump_all(builtin, sort_keys=False))
        out = run(["kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSION, str(path)])
        text = (out.stdout + out.stderr).strip()
        # For a built-in kind a warning means no schema (a wrong apiVersion).
        if out.returncode != 0 or "WARN" in text or "ERROR" in text:
            R.fail(f"{name}: kubernetes-validate:\n{text}")
        else:
            R.ok(f"{name}: {len(builtin)} built-in objects valid ({', '.join(sorted({d['kind'] for d in builtin}))})")


# --------------------------------------------------------------------------
# (d) custom resources against their CRDs


def structural(schema: dict, embedded: bool = False) -> dict:
    """A CRD's OpenAPI v3 schema as a JSON schema that refuses unknown fields."""
    s = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return node
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if node.get("x-kubernetes-embedded-resource") and "properties" in node:
            for field in ("apiVersion", "kind", "metadata"):
                node["properties"].setdefault(field, {})
        for key in ("properties", "patternProperties", "definitions"):
            if isinstance(node.get(key), dict):
                for sub in node[key].values():
                    walk(sub)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key) or []:
                walk(sub)
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node

    return walk(s)


def load_crds(dirs: list[Path]) -> dict[tuple, dict]:
    crds = {}
    for directory in dirs:
        for path in sorted(list(directory.glob("*.yaml")) + list(directory.glob("*.yml"))):
            for doc in load_docs(path.read_text()):
                if doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec.get("versions") or []:
                    schema = (version.get("schema") or {}).get("openAPIV3Schema")
                    crds[(spec["group"], spec["names"]["kind"], version["name"])] = {
                        "schema": schema,
                        "served": version.get("served", False),
                        "file": str(path),
                    }
    return crds


def check_custom(rendered: dict[str, list[dict]]) -> None:
    R.section("(d) custom resources against their CRDs")
    shared = Path(
        os.environ.get("KUBERNETES_CRDS_DIR")
        or REPO.parent / "shared" / "reference" / "kubernetes-crds"
    )
    dirs = [d for d in (shared, KUBE / "crds") if d.is_dir()]
    shared_present = shared.is_dir()
    crds = load_crds(dirs)
    skipped = set()
    for name, docs in rendered.items():
        for doc in docs:
            if is_builtin(doc):
                continue
            group, version = api_group(doc)
            key = (group, doc.get("kind"), version)
            crd = crds.get(key)
            what = f"{name}: {ident(doc)} ({doc.get('apiVersion')})"
            if crd is None:
                if not shared_present:
                    skipped.add(f"{doc.get('kind')}.{group}")
                else:
                    R.fail(f"{what}: no CRD for {key} in {', '.join(map(str, dirs)) or '(none)'}")
                continue
            if not crd["served"]:
                R.fail(f"{what}: version {version} is not served by its CRD ({crd['file']})")
                continue
            if not crd["schema"]:
                R.fail(f"{what}: its CRD has no openAPIV3Schema")
                continue
            validator = jsonschema.Draft4Validator(structural(crd["schema"]))
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            if errors:
                detail = "; ".join(
                    f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10]
                )
                R.fail(f"{what}: {detail}")
            else:
                R.ok(f"{what} valid against {Path(crd['file']).name}")
    if skipped:
        print(
            f"SKIPPED: custom resources not validated (no CRDs at {shared}): {', '.join(sorted(skipped))}",
            flush=True,
        )
        R.note(f"custom resources not validated (no CRDs at {shared})")


# --------------------------------------------------------------------------
# (e) the manifests against the binaries: static part


def check_static(overlay: str, docs: list[dict]) -> list[dict]:
    """Returns the workloads to run (Deployments and Jobs) when the checks pass."""
    workloads = [d for d in docs if d.get("kind") in ("Deployment", "Job", "CronJob", "StatefulSet", "DaemonSet")]
    services = [d for d in docs if d.get("kind") == "Service"]
    by_kind_name = {(d.get("kind"), d["metadata"]["name"]): d for d in docs}
    before = len(R.failures)

    for doc in workloads:
        name = ident(doc)
        spec = pod_spec(doc)
        labels = pod_labels(doc)
        # The pods' hardening.
        problems = []
        if spec.get("automountServiceAccountToken") is not False:
            problems.append("automountServiceAccountToken is not false")
        if not spec.get("serviceAccountName") or ("ServiceAccount", spec["serviceAccountName"]) not in by_kind_name:
            problems.append(f"ServiceAccount {spec.get('serviceAccountName')!r} is not in the overlay")
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append("pod securityContext: runAsNonRoot and seccompProfile RuntimeDefault wanted")
        for _, c in containers(doc):
            sc = c.get("securityContext") or {}
            wanted = {
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "runAsNonRoot": True,
            }
            for field, value in wanted.items():
                if sc.get(field) is not value:
                    problems.append(f"container {c['name']}: securityContext.{field} is not {value}")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"container {c['name']}: capabilities do not drop ALL")
            image = c.get("image", "")
            if ":" not in image.rsplit("/", 1)[-1] and "@" not in image or image.endswith(":latest"):
                problems.append(f"container {c['name']}: image {image!r} has no pinned tag")
            res = c.get("resources") or {}
            if not res.get("requests") or not (res.get("limits") or {}).get("memory"):
                problems.append(f"container {c['name']}: resources requests and a memory limit wanted")
        if problems:
            R.fail(f"{overlay}: {name}: " + "; ".join(problems))
        else:
            R.ok(f"{overlay}: {name}: non-root, read-only, no privileges, own ServiceAccount without token, resources set")

        for role, c in containers(doc):
            binary = binary_of(c)
            where = f"{overlay}: {name} container {c['name']}"
            if binary not in BINARIES:
                R.fail(f"{where}: runs {binary!r}, not one of {BINARIES}")
                continue
            if not binary_path(binary).exists():
                R.fail(f"{where}: {binary_path(binary)} is missing: run `cargo build --bins` first")
                continue
            env, problems = resolve_env(doc, c, docs)
            for problem in problems:
                R.fail(f"{where}: {problem}")
            accepted = accepted_env(binary, list(c.get("args") or []))
            unknown = [var for var in env if var not in accepted]
            if unknown:
                R.fail(f"{where}: {binary} does not accept {', '.join(sorted(unknown))} (not in its --help)")
            else:
                R.ok(f"{where}: {binary} accepts all {len(env)} env vars it is given")
            for var, source in env.items():
                if source[0] == "secret" and var not in STANDIN_ENV and not source[3]:
                    R.fail(f"{where}: {var} comes from Secret {source[1]} and the check has no local stand-in for it")

            # Ports: every named or numbered port used must be declared, and
            # each declared port must be the one a *_LISTEN variable sets.
            ports = declared_ports(c)
            listens = {
                var: listen_port(src[1]) for var, src in env.items() if var.endswith("_LISTEN") and src[0] == "value"
            }
            for var, port in listens.items():
                if port is None:
                    R.fail(f"{where}: {var}={env[var][1]!r} is not host:port")
                elif port not in ports.values():
                    R.fail(f"{where}: {var} listens on {port}, which is not a declared containerPort")
            for port in c.get("ports") or []:
                if port["containerPort"] not in listens.values():
                    R.fail(
                        f"{where}: containerPort {port.get('name')}={port['containerPort']} is not what any *_LISTEN "
                        f"variable sets ({', '.join(f'{k}={v}' for k, v in listens.items()) or 'none set'})"
                    )
            for kind, probe in probes(c):
                http = probe.get("httpGet")
                if not http:
                    continue
                if str(http.get("port")) not in ports:
                    R.fail(f"{where}: {kind} port {http.get('port')!r} is not a declared containerPort")
            if doc["kind"] == "Deployment" and role == "main":
                missing = [k for k in ("livenessProbe", "readinessProbe") if k not in c]
                if missing:
                    R.fail(f"{where}: no {', '.join(missing)}")
                # terminationGracePeriodSeconds covers preStop + drain + flush.
                grace = spec.get("terminationGracePeriodSeconds", 30)
                shutdown = env.get("SHUTDOWN_TIMEOUT_SECS")
                if not shutdown or shutdown[0] != "value":
                    R.fail(f"{where}: SHUTDOWN_TIMEOUT_SECS is not set explicitly")
                else:
                    pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
                    need = pre + int(shutdown[1]) + FLUSH_SECS + 1
                    if grace < need:
                        R.fail(
                            f"{where}: terminationGracePeriodSeconds {grace} < preStop {pre} + "
                            f"SHUTDOWN_TIMEOUT_SECS {shutdown[1]} + flush {FLUSH_SECS} + 1"
                        )
                    else:
                        R.ok(
                            f"{where}: grace {grace}s >= preStop {pre}s + drain {shutdown[1]}s + flush {FLUSH_SECS}s; "
                            f"ports {sorted(set(ports.values()))} = {', '.join(f'{k}' for k in listens)}"
                        )

        # Services that select these pods: their targetPorts must be declared.
        for svc in services:
            if not svc["spec"].get("selector") or not selector_matches(
                {"matchLabels": svc["spec"]["selector"]}, labels
            ):
                continue
            all_ports = {}
            for _, c in containers(doc):
                all_ports.update(declared_ports(c))
            for port in svc["spec"].get("ports") or []:
                target = str(port.get("targetPort", port["port"]))
                if target not in all_ports:
                    R.fail(f"{overlay}: {ident(svc)} targetPort {target!r} is not declared by {name}")
                else:
                    R.ok(f"{overlay}: {ident(svc)} port {port['port']} -> {name} {target} ({all_ports[target]})")

    # Ingress backends name an existing Service port.
    for ing in (d for d in docs if d.get("kind") == "Ingress"):
        for rule in ing["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = path["backend"]["service"]
                svc = by_kind_name.get(("Service", backend["name"]))
                port = backend.get("port", {})
                ok = svc is not None and any(
                    p.get("name") == port.get("name") if "name" in port else p["port"] == port.get("number")
                    for p in svc["spec"].get("ports") or []
                )
                if ok:
                    R.ok(f"{overlay}: {ident(ing)} {path['path']} -> Service {backend['name']} {port}")
                else:
                    R.fail(f"{overlay}: {ident(ing)} {path['path']}: no Service {backend['name']} port {port}")

    # PodDisruptionBudgets: each selects one workload's pods; no pod has two.
    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    for doc in workloads:
        if doc["kind"] != "Deployment":
            continue
        matching = [p for p in pdbs if selector_matches(p["spec"].get("selector"), pod_labels(doc))]
        if len(matching) != 1:
            R.fail(f"{overlay}: {ident(doc)} is covered by {len(matching)} PodDisruptionBudgets (one wanted)")
        else:
            selected = doc["spec"]["selector"]
            if not selector_matches(selected, pod_labels(doc)):
                R.fail(f"{overlay}: {ident(doc)}'s selector does not match its own pods")
            R.ok(f"{overlay}: {ident(doc)} has PodDisruptionBudget {matching[0]['metadata']['name']}")

    # NetworkPolicy ports, by name or number, exist on the pods they select.
    for pol in (d for d in docs if d.get("kind") == "NetworkPolicy"):
        selected = [w for w in workloads if selector_matches(pol["spec"].get("podSelector"), pod_labels(w))]
        for rule in pol["spec"].get("ingress") or []:
            for port in rule.get("ports") or []:
                for w in selected:
                    declared = {}
                    for _, c in containers(w):
                        declared.update(declared_ports(c))
                    if str(port.get("port")) not in declared:
                        R.fail(f"{overlay}: {ident(pol)} admits port {port.get('port')} on {ident(w)}, which does not declare it")

    # deploy/README.md applies the provision Job first, selecting
    # PROVISION_STAGE: the Job, its ServiceAccount, the ConfigMaps it reads
    # and the NetworkPolicies must carry those labels, and no workload may.
    stage = [d for d in docs if selector_matches(PROVISION_STAGE, d.get("metadata", {}).get("labels") or {})]
    staged = {(d.get("kind"), d["metadata"]["name"]) for d in stage}
    for job in (d for d in workloads if d["kind"] == "Job"):
        needed = {("Job", job["metadata"]["name"]), ("ServiceAccount", pod_spec(job).get("serviceAccountName"))}
        for _, c in containers(job):
            for source in c.get("envFrom") or []:
                if "configMapRef" in source:
                    needed.add(("ConfigMap", source["configMapRef"]["name"]))
        needed |= {("NetworkPolicy", d["metadata"]["name"]) for d in docs if d.get("kind") == "NetworkPolicy"}
        missing = sorted(f"{k}/{n}" for k, n in needed - staged)
        extra = sorted(f"{k}/{n}" for k, n in staged if k in ("Deployment", "StatefulSet", "DaemonSet"))
        if missing or extra:
            R.fail(f"{overlay}: the provision stage ({STAGE_TEXT}) lacks {missing} or holds {extra}")
        else:
            R.ok(f"{overlay}: the provision stage ({STAGE_TEXT}) holds {ident(job)} and all it needs, no Deployment")

    # Autoscalers target an existing Deployment, one autoscaler each.
    targets: dict[str, list[str]] = {}
    for doc in docs:
        if doc.get("kind") == "HorizontalPodAutoscaler" or (doc.get("kind") == "ScaledObject"):
            ref = doc["spec"]["scaleTargetRef"]
            kind = ref.get("kind", "Deployment")
            if (kind, ref["name"]) not in by_kind_name:
                R.fail(f"{overlay}: {ident(doc)} targets {kind}/{ref['name']}, which is not in the overlay")
            targets.setdefault(ref["name"], []).append(ident(doc))
    for target, scalers in targets.items():
        if len(scalers) > 1:
            R.fail(f"{overlay}: {target} has more than one autoscaler: {scalers}")

    # KEDA triggers: names as the target's NATS_NAMESPACE derives them, on a
    # consumer the target's roles pull from.
    for so in (d for d in docs if d.get("kind") == "ScaledObject"):
        target = by_kind_name.get(("Deployment", so["spec"]["scaleTargetRef"]["name"]))
        if target is None:
            continue
        env, _ = resolve_env(target, target["spec"]["template"]["spec"]["containers"][0], docs)
        ns = (env.get("NATS_NAMESPACE") or ("value", "hostaway"))[1]
        binary = binary_of(target["spec"]["template"]["spec"]["containers"][0])
        roles = set((env.get("SYNC_ROLES") or ("value", "changes,jobs,reconcile"))[1].split(","))
        for trigger in so["spec"].get("triggers") or []:
            if trigger.get("type") != "nats-jetstream":
                continue
            meta = trigger.get("metadata") or {}
            missing = [k for k in ("natsServerMonitoringEndpoint", "account", "stream", "consumer") if not meta.get(k)]
            if missing:
                R.fail(f"{overlay}: {ident(so)}: nats-jetstream trigger without {missing}")
                continue
            stream, consumer = meta["stream"], meta["consumer"]
            expected = wanted_consumers(ns)
            where = f"{overlay}: {ident(so)} trigger {stream}/{consumer}"
            if (stream, consumer) not in expected:
                R.fail(f"{where}: not a consumer the connector provisions in namespace {ns!r}")
                continue
            owner = expected[(stream, consumer)]
            if owner[0] != binary or (owner[1] and owner[1] not in roles):
                R.fail(f"{where}: {so['spec']['scaleTargetRef']['name']} ({binary}, roles {sorted(roles)}) does not consume it")
            else:
                R.ok(f"{where}: consumed by {so['spec']['scaleTargetRef']['name']}")
    if len(R.failures) == before:
        return [d for d in workloads if d["kind"] in ("Deployment", "Job")]
    return []


def wanted_consumers(ns: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(stream, consumer) -> (binary, dispatcher role), as service-kit's
    Topology names them (nats.rs) for every JobLane (sync_queue.rs)."""
    up = ns.upper()
    out = {
        (f"{up}_WEBHOOKS", f"{ns}_booking_ingestor"): ("booking-ingestor", None),
        (f"{up}_CHANGES", f"{ns}_sync_changes"): ("sync-dispatcher", "changes"),
    }
    for mode in ("push", "reconcile"):
        for kind in ("availability", "reservations", "pricing", "listing"):
            out[(f"{up}_SYNC", f"{ns}_sync_{mode}_{kind}")] = ("sync-dispatcher", "jobs")
    return out


# --------------------------------------------------------------------------
# (e) the live part: the Job, then each Deployment's binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(2000).decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
        return None, ""


def nats_request(url: str, subject: str, payload: bytes = b"", timeout: float = 5.0) -> dict:
    """One JetStream API request over NATS' text protocol (stdlib only)."""
    first = url.split(",")[0].strip()
    parsed = urllib.parse.urlparse(first if "://" in first else "nats://" + first)
    connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1}
    if parsed.username:
        if parsed.password is not None:
            connect.update(user=urllib.parse.unquote(parsed.username), **{"pass": urllib.parse.unquote(parsed.password)})
        else:
            connect["auth_token"] = urllib.parse.unquote(parsed.username)
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        stream.readline()  # INFO
        inbox = "_INBOX." + secrets.token_hex(8)
        sock.sendall(
            f"CONNECT {json.dumps(connect)}\r\nSUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode()
            + payload
            + b"\r\n"
        )
        while True:
            line = stream.readline()
            if not line:
                raise RuntimeError("NATS closed the connection")
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode().strip())
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                return json.loads(stream.read(size + 2)[:size])
            elif line.startswith(b"HMSG"):
                parts = line.split()
                total = int(parts[-1])
                body = stream.read(total + 2)[:total]
                raise RuntimeError(f"no JetStream answer: {body[: int(parts[-2])].decode(errors='replace').strip()}")


class Scratch:
    """A fresh database and NATS namespace for one overlay, cleaned up after."""

    def __init__(self, overlay: str, work: Path) -> None:
        self.overlay = overlay
        self.work = work
        self.name = f"deploycheck_{secrets.token_hex(3)}_{overlay}"[:32]
        server = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        self.server = server
        parsed = urllib.parse.urlparse(server)
        self.database_url = urllib.parse.urlunparse(parsed._replace(path="/" + self.name))
        self.nats_url = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
        self.key = ""
        self.created = False
        self.provisioned = False

    def __enter__(self) -> "Scratch":
        out = run(["psql", self.server, "-qAtc", f"CREATE DATABASE {self.name}"], timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"cannot create database {self.name} on {self.server}: {out.stderr.strip()}")
        self.created = True
        out = run([str(binary_path("hostaway-admin")), "keys", "generate"], timeout=30)
        if out.returncode != 0 or not out.stdout.strip():
            raise RuntimeError(f"hostaway-admin keys generate failed: {out.stderr.strip()}")
        self.key = out.stdout.strip()
        return self

    def __exit__(self, *exc) -> None:
        if self.provisioned:
            env = self.base_env() | {"NATS_URL": self.nats_url, "NATS_NAMESPACE": self.name}
            out = run(
                [str(binary_path("hostaway-admin")), "streams", "delete", "--yes"], env=env, timeout=60
            )
            if out.returncode != 0:
                R.note(f"{self.overlay}: streams of namespace {self.name} not deleted: {out.stderr.strip()}")
        if self.created:
            out = run(["psql", self.server, "-qAtc", f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"], timeout=60)
            if out.returncode != 0:
                R.note(f"{self.overlay}: database {self.name} not dropped: {out.stderr.strip()}")

    @staticmethod
    def base_env() -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}

    def env_for(self, where: str, env: dict) -> tuple[dict, dict[str, int], list[str]]:
        """The container's env made local. Returns the env, the listen
        rewrites (declared port -> local port) and what was changed."""
        local = self.base_env()
        rewrites: dict[int, int] = {}
        changed = []
        for var, source in env.items():
            if source[0] == "secret":
                optional = source[3]
                if var == "DATABASE_URL":
                    local[var] = self.database_url
                elif var == "NATS_URL":
                    local[var] = self.nats_url
                elif var == "CONNECTOR_CREDENTIALS_KEY":
                    local[var] = self.key
                elif optional:
                    continue  # an optional key absent from the Secret
                else:
                    raise RuntimeError(f"{where}: no local stand-in for {var} (Secret {source[1]})")
            elif source[0] == "field":
                raise RuntimeError(f"{where}: {var} comes from {source[1]}: no local stand-in")
            else:
                local[var] = source[1]
        # A namespace of its own, whatever the manifests say.
        local["NATS_NAMESPACE"] = self.name
        if local.get("NATS_STREAM_REPLICAS", "1") != "1":
            changed.append(f"NATS_STREAM_REPLICAS {local['NATS_STREAM_REPLICAS']} -> 1 (one local server)")
            local["NATS_STREAM_REPLICAS"] = "1"
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in local:
            changed.append("OTEL_EXPORTER_OTLP_ENDPOINT unset (no collector here)")
            del local["OTEL_EXPORTER_OTLP_ENDPOINT"]
        for var in list(local):
            if var.endswith("_LISTEN"):
                port = listen_port(local[var])
                new = free_port()
                rewrites[port] = new
                local[var] = f"127.0.0.1:{new}"
        return local, rewrites, changed


def run_job(scratch: Scratch, overlay: str, job: dict, docs: list[dict]) -> bool:
    for role, c in containers(job):
        binary = binary_of(c)
        env, _ = resolve_env(job, c, docs)
        where = f"{overlay}: {ident(job)} {role} container {c['name']}"
        try:
            local, _, changed = scratch.env_for(where, env)
        except RuntimeError as error:
            R.fail(str(error))
            return False
        args = list(c.get("args") or [])
        started = time.monotonic()
        out = run([str(binary_path(binary)), *args], env=local, timeout=300)
        took = time.monotonic() - started
        if out.returncode != 0:
            R.fail(f"{where}: `{binary} {' '.join(args)}` exited {out.returncode}:\n{out.stderr.strip()[-2000:]}")
            return False
        if args[:2] == ["streams", "provision"]:
            scratch.provisioned = True
        R.ok(
            f"{where}: `{binary} {' '.join(args)}` with the Job's env succeeded in {took:.1f}s"
            + (f" ({'; '.join(changed)})" if changed else "")
        )
    return True


def check_consumers(scratch: Scratch, overlay: str, docs: list[dict]) -> None:
    """Every stream/consumer a ScaledObject watches exists once the Job ran."""
    for so in (d for d in docs if d.get("kind") == "ScaledObject"):
        target = next(
            (d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"]),
            None,
        )
        if target is None:
            continue
        env, _ = resolve_env(target, target["spec"]["template"]["spec"]["containers"][0], docs)
        ns = (env.get("NATS_NAMESPACE") or ("value", "hostaway"))[1]
        for trigger in so["spec"].get("triggers") or []:
            meta = trigger.get("metadata") or {}
            if trigger.get("type") != "nats-jetstream" or not meta.get("stream"):
                continue
            stream = scratch.name.upper() + meta["stream"][len(ns):]
            consumer = scratch.name + meta["consumer"][len(ns):]
            where = f"{overlay}: {ident(so)} {meta['stream']}/{meta['consumer']}"
            try:
                info = nats_request(scratch.nats_url, f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")
            except (OSError, RuntimeError, ValueError) as error:
                R.fail(f"{where}: cannot ask NATS: {error}")
                continue
            if "error" in info:
                R.fail(f"{where}: {stream}/{consumer} missing after streams provision: {info['error']}")
            else:
                R.ok(f"{where}: provisioned (as {stream}/{consumer})")


def run_deployment(scratch: Scratch, overlay: str, deployment: dict, docs: list[dict]) -> None:
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    binary = binary_of(c)
    where = f"{overlay}: {ident(deployment)}"
    env, _ = resolve_env(deployment, c, docs)
    try:
        local, rewrites, changed = scratch.env_for(where, env)
    except RuntimeError as error:
        R.fail(str(error))
        return
    ports = declared_ports(c)
    checks = []  # (what, method, url, ok-statuses)
    for kind, probe in probes(c):
        if "httpGet" not in probe:
            continue
        declared = ports[str(probe["httpGet"]["port"])]
        checks.append((f"{kind} {probe['httpGet']['path']}", "GET", f"http://127.0.0.1:{rewrites[declared]}{probe['httpGet']['path']}"))
    readiness = c.get("readinessProbe", {}).get("httpGet")
    # Prometheus scrapes /metrics on the port named ops.
    if "ops" in ports:
        checks.append(("metrics /metrics", "GET", f"http://127.0.0.1:{rewrites[ports['ops']]}/metrics"))
    # The Ingress paths that reach this Deployment through its Service.
    labels = pod_labels(deployment)
    for svc in (d for d in docs if d.get("kind") == "Service"):
        if not selector_matches({"matchLabels": svc["spec"].get("selector") or {}}, labels) or not svc["spec"].get("selector"):
            continue
        for ing in (d for d in docs if d.get("kind") == "Ingress"):
            for rule in ing["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    backend = path["backend"]["service"]
                    if backend["name"] != svc["metadata"]["name"]:
                        continue
                    sport = next(
                        p for p in svc["spec"]["ports"]
                        if p.get("name") == backend["port"].get("name") or p["port"] == backend["port"].get("number")
                    )
                    declared = ports[str(sport.get("targetPort", sport["port"]))]
                    checks.append(
                        (f"{ident(ing)} POST {path['path']}", "POST", f"http://127.0.0.1:{rewrites[declared]}{path['path']}")
                    )

    log_path = scratch.work / f"{overlay}-{deployment['metadata']['name']}.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([str(binary_path(binary)), *(c.get("args") or [])], env=local, stdout=log, stderr=log)
    failed = False

    def tail() -> str:
        log.flush()
        return log_path.read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + DEADLINE
        answered = {}
        while len(answered) < len(checks) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            for what, method, url in checks:
                if what in answered:
                    continue
                status, _ = http(method, url)
                if status is not None:
                    answered[what] = status
            time.sleep(0.1)
        if process.poll() is not None:
            R.fail(f"{where}: {binary} exited {process.returncode} at start:\n{tail()}")
            return
        for what, method, url in checks:
            status = answered.get(what)
            if status is None:
                R.fail(f"{where}: {what}: no answer within {DEADLINE:.0f}s")
                failed = True
            elif status == 404:
                R.fail(f"{where}: {what}: 404, the binary does not serve it")
                failed = True
        if readiness:
            url = f"http://127.0.0.1:{rewrites[ports[str(readiness['port'])]]}{readiness['path']}"
            status, body = None, ""
            while time.monotonic() < deadline and process.poll() is None:
                status, body = http("GET", url)
                if status == 200:
                    break
                time.sleep(0.2)
            if status != 200:
                R.fail(f"{where}: never ready within {DEADLINE:.0f}s (the provision Job's topology and this env disagree?): {status} {body}")
                failed = True
        if not failed:
            R.ok(
                f"{where}: {binary} answered "
                + ", ".join(f"{w} {answered[w]}" for w, _, _ in checks)
                + ("; ready" if readiness else "")
                + (f" ({'; '.join(changed)})" if changed else "")
            )
        # SIGTERM: out within SHUTDOWN_TIMEOUT_SECS (+ the final NATS flush).
        timeout = int(local.get("SHUTDOWN_TIMEOUT_SECS", "25"))
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=timeout + FLUSH_SECS)
            took = time.monotonic() - started
            if code != 0:
                R.fail(f"{where}: exited {code} after SIGTERM:\n{tail()}")
            else:
                R.ok(f"{where}: SIGTERM -> exit 0 in {took:.1f}s (SHUTDOWN_TIMEOUT_SECS {timeout})")
        except subprocess.TimeoutExpired:
            R.fail(f"{where}: still running {timeout + FLUSH_SECS}s after SIGTERM:\n{tail()}")
        if failed:
            print(tail(), file=sys.stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def check_live(work: Path, overlay: str, docs: list[dict], workloads: list[dict]) -> None:
    jobs = [w for w in workloads if w["kind"] == "Job"]
    deployments = [w for w in workloads if w["kind"] == "Deployment"]
    if not jobs:
        R.fail(f"{overlay}: no provision Job")
        return
    try:
        with Scratch(overlay, work) as scratch:
            print(f"  ..    {overlay}: database and NATS namespace {scratch.name}", flush=True)
            for job in jobs:
                if not run_job(scratch, overlay, job, docs):
                    return
            check_consumers(scratch, overlay, docs)
            for deployment in deployments:
                run_deployment(scratch, overlay, deployment, docs)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        R.fail(f"{overlay}: {error}")


# --------------------------------------------------------------------------


def main() -> int:
    print(f"deploy checks: {REPO}", flush=True)
    with tempfile.TemporaryDirectory(prefix="deploy-checks-") as tmp:
        work = Path(tmp)
        check_dockerfile()
        rendered = render(work)
        check_builtin(work, rendered)
        check_custom(rendered)
        R.section("(e) the manifests against the binaries")
        missing = [b for b in BINARIES if not binary_path(b).exists()]
        if missing:
            R.fail(
                f"binaries missing in {target_dir() / 'debug'}: {', '.join(missing)}; "
                "run `cargo build --bins` first (same CARGO_TARGET_DIR)"
            )
        else:
            for overlay in OVERLAYS:
                if overlay not in rendered:
                    continue
                workloads = check_static(overlay, rendered[overlay])
                if workloads:
                    check_live(work, overlay, rendered[overlay], workloads)
                else:
                    R.note(f"{overlay}: binaries not started (static checks failed)")
        if R.failures:
            keep = Path(tempfile.mkdtemp(prefix="deploy-checks-failed-"))
            for path in work.iterdir():
                (keep / path.name).write_bytes(path.read_bytes())
            R.note(f"rendered manifests and logs kept in {keep}")

    print("\n== summary", flush=True)
    print(f"  {len(R.passes)} passed, {len(R.failures)} failed, {len(R.notes)} notes")
    for note in R.notes:
        print(f"  note  {note}")
    for failure in R.failures:
        print(f"  FAIL  {failure.splitlines()[0]}")
    if R.failures:
        print("deploy checks FAILED", flush=True)
        return 1
    print("deploy checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
