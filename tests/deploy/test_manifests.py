"""deploy/compose and deploy/k8s cannot run here (no Docker, no cluster): check their
shape the way ``docker compose config`` and ``kubeconform`` would, with a schema of
what each object must hold, and that the Dockerfile and the compose services run the
server the way the rest of the project starts it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from comet.server.app import HEALTH_NAMES, HEALTH_SERVICE
from comet.server.cli import _parser

pytestmark = pytest.mark.timeout(30)

DEPLOY = Path(__file__).parents[2] / "deploy"
COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
SERVERS = ("comet-1", "comet-2", "comet-3")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def k8s_objects() -> list[dict[str, Any]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            found.append(doc)
    return found


def test_compose_services_are_complete() -> None:
    spec = compose()
    services = spec["services"]
    assert {"postgres", "minio", "nginx", *SERVERS} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert set(service) <= COMPOSE_SERVICE_KEYS, (name, set(service) - COMPOSE_SERVICE_KEYS)
        if service.get("restart") != "no":  # long-running: must report its health
            check = service.get("healthcheck", {})
            assert check.get("test") and not check.get("disable"), name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            assert condition["condition"] in {
                "service_started", "service_healthy", "service_completed_successfully"
            }  # fmt: skip
    assert services["nginx"]["ports"] == ["8060:8060"]  # the only published port
    for name in ("postgres", "minio", *SERVERS):
        assert not services[name].get("ports"), f"{name} must stay on the compose network"
    for volume in spec.get("volumes", {}):
        assert any(
            str(v).startswith(f"{volume}:") for s in services.values() for v in s.get("volumes", [])
        ), volume
    for secret in spec.get("secrets", {}).values():
        assert not Path(secret["file"]).is_absolute()


def test_compose_servers_start_with_valid_arguments_and_no_secrets_in_argv() -> None:
    services = compose()["services"]
    for name in SERVERS:
        service = services[name]
        args = [re.sub(r"\$\{[A-Z_]+\}", "x", a) for a in service["command"]]
        parsed = _parser().parse_args(args)  # the real CLI accepts them
        assert parsed.command == "serve" and parsed.bucket_store.startswith("s3://")
        assert parsed.insecure_plaintext and parsed.listen == "0.0.0.0:8060"
        assert parsed.secret_key_file is not None
        env = service["environment"]
        assert {"COMET_S3_ACCESS_KEY_ID", "COMET_S3_SECRET_ACCESS_KEY"} <= set(env)
        assert not any("MINIO_ROOT" in a for a in service["command"])  # keys via env only
        check = service["healthcheck"]["test"]
        assert check[:3] == ["CMD", "comet-server", "health"]
        _parser().parse_args(check[2:])
        assert service["deploy"]["resources"]["reservations"]["memory"]


def test_the_image_is_debian_non_root_and_checks_grpc_health() -> None:
    text = (COMPOSE / "Dockerfile").read_text()
    froms = re.findall(r"(?m)^FROM (\S+)", text)
    assert froms and all(f.startswith("debian:") for f in froms)
    users = re.findall(r"(?m)^USER (\S+)", text)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    [check] = re.findall(r"(?ms)^HEALTHCHECK .*?CMD (\[.*?\])", text)
    assert '"comet-server", "health"' in check
    for copied in re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", text):
        for name in copied.split():
            assert (DEPLOY.parent / name).exists(), name


def test_the_compose_nginx_keeps_the_reference_settings() -> None:
    reference = (DEPLOY / "nginx" / "comet.conf").read_text()
    ours = (COMPOSE / "nginx.conf").read_text()
    directives = lambda text: {  # noqa: E731
        line.strip() for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("#", "server "))
    }  # fmt: skip
    assert directives(reference) == directives(ours)
    upstreams = re.findall(r"server (comet-\d):8060", ours)
    assert tuple(upstreams) == SERVERS


# What the compose file format allows on a service (the subset a reviewer would use).
COMPOSE_SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "depends_on", "healthcheck", "restart", "secrets", "deploy", "profiles",
    "stop_grace_period", "labels", "networks", "user",
}  # fmt: skip

K8S_REQUIRED = {
    "Namespace": ("v1", []),
    "ConfigMap": ("v1", ["data"]),
    "Service": ("v1", ["spec.selector", "spec.ports"]),
    "Deployment": ("apps/v1", ["spec.selector.matchLabels", "spec.template.spec.containers"]),
    "Job": ("batch/v1", ["spec.template.spec.containers"]),
    "PodDisruptionBudget": ("policy/v1", ["spec.selector.matchLabels"]),
    "Ingress": ("networking.k8s.io/v1", ["spec.rules", "spec.tls"]),
}


def dig(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        obj = obj[part]
    return obj


def test_k8s_objects_have_their_schema_fields() -> None:
    objects = k8s_objects()
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Ingress"} <= kinds
    for obj in objects:
        version, paths = K8S_REQUIRED[obj["kind"]]
        assert obj["apiVersion"] == version, obj["kind"]
        assert obj["metadata"]["name"]
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "comet"
        for path in paths:
            assert dig(obj, path), (obj["kind"], path)


def test_k8s_server_pods_are_probed_sized_and_guarded() -> None:
    objects = k8s_objects()
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    [pdb] = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    [service] = [o for o in objects if o["kind"] == "Service"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    startup = container["startupProbe"]["httpGet"]  # the console, up after gRPC
    assert startup["port"] in ("web", ports["web"])
    assert ("GET", startup["path"]) in {(r.method, r.path) for r in console_routes()}
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"] and container["resources"]["limits"]["memory"]
    args = [re.sub(r"\$\(([A-Z_]+)\)", "x", a) for a in container["args"]]
    parsed = _parser().parse_args(args)
    assert parsed.command == "serve" and parsed.insecure_plaintext
    assert parsed.listen.endswith(f":{ports['grpc']}")
    assert parsed.web_listen.endswith(f":{ports['web']}") and parsed.web_secure_cookies
    assert parsed.metrics_listen.endswith(f":{ports['metrics']}")
    served = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert {"grpc", "web"} <= set(served) and set(served.values()) <= set(ports)
    env = {e["name"] for e in container["env"]}
    assert {"COMET_S3_ACCESS_KEY_ID", "COMET_S3_SECRET_ACCESS_KEY", "DATABASE_URL"} <= env
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["spec"]["volumes"]}


def console_routes() -> list[Any]:
    """The web console's pages (method and path), as the server routes them."""
    from comet.server.web.pages import Pages

    return Pages.__new__(Pages).routes()  # the table only names the handlers


def test_k8s_ingress_routes_grpc_by_service_and_the_rest_to_the_console() -> None:
    """Like the nginx configs' Content-Type split: every gRPC service the server offers
    has its path on the gRPC port (backend protocol GRPC), "/" goes to the console
    (plain HTTP), on one host with the same certificate."""
    ingresses = [o for o in k8s_objects() if o["kind"] == "Ingress"]
    routes: dict[str, tuple[str, str]] = {}
    hosts = set()
    for ingress in ingresses:
        protocol = ingress["metadata"]["annotations"][
            "nginx.ingress.kubernetes.io/backend-protocol"
        ]
        assert ingress["spec"]["tls"][0]["secretName"] == "comet-tls"
        for rule in ingress["spec"]["rules"]:
            hosts.add(rule["host"])
            for path in rule["http"]["paths"]:
                assert path["pathType"] == "Prefix" and path["path"] not in routes
                backend = path["backend"]["service"]
                assert backend["name"] == "comet-server"
                routes[path["path"]] = (protocol, backend["port"]["name"])
    assert len(hosts) == 1
    services = [f"/{name}" for name in HEALTH_NAMES if name] + [f"/{HEALTH_SERVICE}"]
    assert {path: routes.get(path) for path in services} == dict.fromkeys(
        services, ("GRPC", "grpc")
    )
    assert routes["/"] == ("HTTP", "web")
    assert set(routes) == {*services, "/"}


def test_k8s_objects_validate_against_the_kubernetes_schemas() -> None:
    """kubeconform's check, offline: every object against the OpenAPI schemas of the
    Kubernetes versions the manifests target (strict: unknown fields are errors)."""
    for version in K8S_VERSIONS:
        for obj in k8s_objects():
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                name = f"{obj['kind']}/{obj['metadata']['name']}"
                raise AssertionError(f"{name} on Kubernetes {version}: {e}") from None


# Native gRPC probes need 1.24 or later; one recent version (each takes seconds).
K8S_VERSIONS = ("1.33.0",)
