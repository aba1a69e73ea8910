"""The Helm chart (deploy/helm/minyi), offline: `helm lint` and `helm template` for every values
file, every rendered object validated against its schema (Kubernetes: kubernetes-validate;
KEDA and ServiceMonitor: @kubernetes-models and the projects' own CRDs; MongoDBCommunity: the
operator's own CRD), and a policy on every Deployment. The tools come from
deploy/helm/tools.sh (pinned, in var/tools)."""

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.settings import SERVICES
from shared.topology import BINDINGS, work_queue_name

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "minyi"
TOOLS = ROOT / "var" / "tools"
HELM = TOOLS / "bin" / "helm"
KUBE_VERSION = "1.33.0"
VALUES = sorted(CHART.glob("values-*.yaml"))
# Validated by the Node models of @kubernetes-models (tests/deploy/validate_crds.mjs).
NODE_MODELS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
# No schema package of the RabbitMQ cluster operator is reachable here (docs/deploy.md).
NOT_COVERED = {("rabbitmq.com/v1beta1", "RabbitmqCluster")}
MONGODB = ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity")
# Each project's own CRD, from its Go module at the version deploy/helm/tools.sh pins.
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "v2.21.0-keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "v2.21.0-keda.sh_triggerauthentications.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "v0.85.0-monitoring.coreos.com_servicemonitors.yaml"
    ),
    MONGODB: "v0.9.0-mongodbcommunity.mongodb.com_mongodbcommunity.yaml",
}
Objects = list[dict[str, Any]]


@pytest.fixture(scope="session")
def tools() -> None:
    """Install the pinned tools if missing (seconds when cached; `make test` did it already)."""
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    missing = [tool for tool in ("npm", "node") if shutil.which(tool) is None] + (
        [] if go else ["go"]
    )
    if missing:
        pytest.skip(f"cannot install the chart's tools without {', '.join(missing)}")
    subprocess.run([ROOT / "deploy" / "helm" / "tools.sh"], check=True, stdout=subprocess.DEVNULL)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)


def render(values: Path, *sets: str) -> Objects:
    extra = [arg for s in sets for arg in ("--set", s)]
    done = helm(
        "template", "minyi", str(CHART), "--namespace", "minyi", "--kube-version", KUBE_VERSION,
        "-f", str(values), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def node_validate(objects: Objects) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            "node",
            str(Path(__file__).with_name("validate_crds.mjs")),
            str(TOOLS / "node" / "node_modules"),
        ],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((TOOLS / "crds" / CRDS[(api_version, kind)]).read_text())
    version = api_version.rsplit("/", 1)[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


def unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the CRD's structural schema does not declare: the API server would refuse them
    (strict field validation) or drop them silently (pruning)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, list) and "items" in schema:
        return [e for i, v in enumerate(value) for e in unknown_fields(v, schema["items"], path)]
    if not isinstance(value, dict):
        return []
    found = []
    known = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if path == "" and key in ("apiVersion", "kind", "metadata"):
            continue  # ObjectMeta: the API server's own, not part of a CRD's schema
        if key in known:
            found += unknown_fields(item, known[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            found += unknown_fields(item, extra, f"{path}.{key}")
        else:
            found.append(f"unknown field {path}.{key}")
    return found


def crd_errors(obj: dict[str, Any]) -> list[str]:
    schema = crd_schema(obj["apiVersion"], obj["kind"])
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
    return errors + unknown_fields(obj, schema, "")


def schema_errors(objects: Objects) -> dict[str, list[str]]:
    """Errors by "<kind>/<name>"; an object no schema covers is an error too, unless its kind is
    one of NOT_COVERED."""
    errors: dict[str, list[str]] = {}
    for_node = [o for o in objects if (o["apiVersion"], o["kind"]) in NODE_MODELS]
    for result in node_validate(for_node):
        errors[f"{result['kind']}/{result['name']}"] = result["errors"]
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        kind = (obj["apiVersion"], obj["kind"])
        if kind in CRDS:
            errors[name] = errors.get(name, []) + crd_errors(obj)
        elif kind not in NOT_COVERED:
            try:
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
                errors[name] = []
            except kubernetes_validate.ValidationError as exc:
                errors[name] = [str(exc.message)]
            except kubernetes_validate.SchemaNotFoundError:
                errors[name] = [f"no schema for {kind}"]
    return {name: found for name, found in errors.items() if found}


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY", "CREDENTIAL")
# A URL with a password written into it (a $(VAR) reference to a secret is fine).
URL_PASSWORD = re.compile(r"://[^/:@\s]+:(?!\$\()[^@/\s]+@")


def policy_violations(objects: Objects) -> list[str]:
    """What a Deployment (or the setup Job) does wrong: probes, limits, non-root, read-only
    root, image tags, secret values written into the chart."""
    found = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Secret":
            found.append(f"{name}: the chart must not carry a Secret")
        if obj["kind"] == "ConfigMap":
            found += [
                f"{name}: {key} looks like a secret in a ConfigMap"
                for key in obj["data"]
                if any(word in key.upper() for word in SECRET_WORDS)
            ]
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            found.append(f"{name}: pod may run as root")
        for c in containers(obj):
            where = f"{name}/{c['name']}"
            image = c["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if tag in ("", "latest"):
                found.append(f"{where}: image {image} has no pinned tag")
            security = c.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                found.append(f"{where}: root filesystem is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                found.append(f"{where}: capabilities not dropped")
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in (resources.get(kind) or {}):
                        found.append(f"{where}: no {what} {kind}")
            for env in c.get("env", []):
                secretish = any(word in env["name"].upper() for word in SECRET_WORDS)
                if secretish and "value" in env:
                    found.append(f"{where}: {env['name']} has a value in the chart")
                if URL_PASSWORD.search(env.get("value", "")):
                    found.append(f"{where}: {env['name']} has a password in its URL")
            if obj["kind"] == "Deployment":
                live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
                ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
                if live != "/health":
                    found.append(f"{where}: liveness probe is not /health")
                if ready != "/ready":
                    found.append(f"{where}: readiness probe is not /ready")
    return found


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_helm_lint(tools: None, values: Path) -> None:
    done = helm("lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSION)
    assert done.returncode == 0, done.stdout + done.stderr


def test_both_sizes_are_there() -> None:
    assert [p.name for p in VALUES] == ["values-large-city.yaml", "values-small-district.yaml"]


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_every_rendered_object_matches_its_schema(tools: None, values: Path) -> None:
    objects = render(values)
    assert schema_errors(objects) == {}
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    # Each of the CRD kinds really was rendered (so its validator really ran).
    assert {*NODE_MODELS, *NOT_COVERED, MONGODB} <= kinds


def test_the_validators_refuse_broken_objects(tools: None) -> None:
    objects = render(VALUES[0])
    broken = copy.deepcopy(objects)
    for obj in broken:
        if obj["kind"] == "Deployment":
            obj["spec"]["revisionHistoryLimit"] = "five"
        if obj["kind"] == "ScaledObject":
            obj["spec"]["maxReplicaCount"] = "many"
        if obj["kind"] == "ServiceMonitor":
            obj["spec"]["endpoints"] = "http"
        if obj["kind"] == "MongoDBCommunity":
            obj["spec"]["type"] = "Standalone"
    errors = schema_errors(broken)
    for obj in broken:
        if obj["kind"] in ("Deployment", "ScaledObject", "ServiceMonitor", "MongoDBCommunity"):
            assert f"{obj['kind']}/{obj['metadata']['name']}" in errors


def test_a_misspelt_field_of_a_custom_resource_is_refused(tools: None) -> None:
    """CRD schemas allow any field unless told otherwise; the API server does not."""
    for obj in render(VALUES[0]):
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            obj["spec"]["minReplicas"] = 1  # in none of these kinds
            assert "unknown field .spec.minReplicas" in crd_errors(obj), obj["kind"]


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_every_deployment_follows_the_policy(tools: None, values: Path) -> None:
    objects = render(values)
    assert policy_violations(objects) == []
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert deployments == {f"minyi-{s}" for s in (*SERVICES, "console")}


def test_the_policy_catches_what_it_checks(tools: None) -> None:
    objects = render(VALUES[0], "image.tag=latest", "services.routing.resources.limits=null")
    intake = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "minyi-intake"
    )
    intake["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    intake["spec"]["template"]["spec"]["containers"][0]["env"] += [
        {"name": "MINYI_SECRET", "value": "hunter2"},
        {"name": "MINYI_RABBIT_ADMIN_URL", "value": "http://admin:hunter2@broker:15672"},
    ]
    found = "\n".join(policy_violations(objects))
    assert "image registry.example.org/minyi/minyi:latest has no pinned tag" in found
    assert "Deployment/minyi-routing/routing: no cpu limits" in found
    assert "Deployment/minyi-intake/intake: readiness probe is not /ready" in found
    assert "Deployment/minyi-intake/intake: MINYI_SECRET has a value in the chart" in found
    assert "intake: MINYI_RABBIT_ADMIN_URL has a password in its URL" in found


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_each_consuming_service_scales_on_its_work_queue(tools: None, values: Path) -> None:
    objects = render(values)
    chosen = yaml.safe_load(values.read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    scaled = {
        o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "ScaledObject"
    }
    assert set(scaled) == {f"minyi-{s}" for s in BINDINGS}
    for service in BINDINGS:
        spec = scaled[f"minyi-{service}"]["spec"]
        replicas = {
            **defaults["services"][service]["replicas"],
            **chosen.get("services", {}).get(service, {}).get("replicas", {}),
        }
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
            replicas["min"],
            replicas["max"],
        )
        assert spec["minReplicaCount"] >= 1  # every service has an API and a sweeper to run
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == work_queue_name(service)
        assert trigger["authenticationRef"]["name"] == "minyi-rabbitmq"


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_broker_and_store_are_replicated_and_fenced(tools: None, values: Path) -> None:
    objects = render(values)
    by_kind = {o["kind"]: o for o in objects}
    assert by_kind["RabbitmqCluster"]["spec"]["replicas"] == 3
    assert by_kind["MongoDBCommunity"]["spec"]["members"] == 3
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    pod_labels = [
        o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "Deployment"
    ]
    for labels in pod_labels:  # every pod of the chart is behind a policy
        assert any(
            p["podSelector"]["matchLabels"].items() <= labels.items() for p in policies.values()
        ), labels
    amqp = [
        rule
        for rule in policies["minyi-broker"]["ingress"]
        if {"port": 5672, "protocol": "TCP"} in rule["ports"]
    ]
    sources = [peer for rule in amqp for peer in rule["from"]]
    assert {"podSelector": {"matchLabels": {"minyi.example.org/role": "service"}}} in sources
    assert not any("ipBlock" in peer or "namespaceSelector" in peer for peer in sources)
