"""deploy/kubernetes: valid Kubernetes 1.37 objects (offline schemas) that fit together.

The schemas are kubernetes-validate's bundled ones (strict: unknown fields are errors),
so nothing here needs a cluster or the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from gymrpc_server.cli import _OPTIONS, build_config
from gymrpc_server.config import split_address

KUBERNETES_VERSION = "1.37.0"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = DEPLOY / "kubernetes"
#: Every variable gymrpc-server reads (one per flag, and the log level).
VARIABLES = {option.variable for option in _OPTIONS} | {"GYMRPC_LOG_LEVEL"}


def load(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


OBJECTS = [
    (path.name, document)
    for path in sorted(MANIFESTS.glob("*.yaml"))
    if path.name != "kustomization.yaml"
    for document in load(path)
]


def only(kind: str) -> dict[str, Any]:
    found = [document for _, document in OBJECTS if document["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = only("StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_values() -> dict[str, Any]:
    """The container's variables: a string, or the ``valueFrom`` mapping."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container()["env"]}


def port_of(name: str) -> int:
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    return int(ports[name])


@pytest.mark.parametrize(
    "document", [document for _, document in OBJECTS], ids=[f"{n}:{d['kind']}" for n, d in OBJECTS]
)
def test_every_object_is_valid_for_kubernetes_1_37(document: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True) == "1.37"


def test_the_schema_check_would_catch_a_mistake() -> None:
    broken = yaml.safe_load((MANIFESTS / "statefulset.yaml").read_text())
    probe = broken["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted({name for name, _ in OBJECTS})
    image = container()["image"].partition(":")[0]
    assert [entry["name"] for entry in kustomization["images"]] == [image]


def test_a_headless_service_names_every_pod_of_the_statefulset() -> None:
    service, statefulset = only("Service"), only("StatefulSet")
    assert service["spec"]["clusterIP"] == "None"  # one DNS record per pod, no virtual IP
    assert not service["spec"].get("publishNotReadyAddresses", False)  # ready pods only
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    budget = only("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for port in service["spec"]["ports"]:
        assert port["port"] == port_of(port["targetPort"]), port


def test_the_container_runs_the_image_command_configured_by_known_variables() -> None:
    spec = container()
    # The image's CMD (gymrpc-server) runs: no command or args replace it.
    assert "command" not in spec
    assert "args" not in spec
    env = env_values()
    unknown = set(env) - VARIABLES
    assert not unknown, f"variables gymrpc-server does not read: {unknown}"
    strings = {name: value for name, value in env.items() if isinstance(value, str)}
    # gymrpc-server's own parser accepts the configuration.
    config, log_level = build_config([], {**strings, "GYMRPC_DATABASE": "none"})
    assert log_level == "INFO"
    assert config.address == "0.0.0.0:50051"
    assert split_address(config.address)[1] == port_of("grpc")
    assert config.metrics_address is not None
    assert split_address(config.metrics_address)[1] == port_of("metrics")
    assert config.tokens_file is not None  # a public address needs tokens
    assert config.tls
    assert config.workers == 1  # the Service lists pods, not worker ports: scale replicas
    # Every stream holds a call slot, and so does a probe: keep room for the probes.
    assert config.max_sessions < config.max_concurrent_rpcs
    assert env["GYMRPC_DATABASE"] == {"secretKeyRef": {"name": "gymrpc-database", "key": "url"}}
    grace = only("StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > config.grace_period + 5


def test_files_come_from_secrets_mounted_read_only() -> None:
    spec = container()
    volumes = {v["name"]: v for v in only("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in spec["volumeMounts"]}
    for variable in ("GYMRPC_TOKENS_FILE", "GYMRPC_TLS_CERT", "GYMRPC_TLS_KEY"):
        path = Path(env_values()[variable])
        mount = mounts[str(path.parent)]
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert path.name in [item["path"] for item in secret["items"]], variable
    tls = volumes[mounts[str(Path(env_values()["GYMRPC_TLS_CERT"]).parent)]["name"]]["secret"]
    # A kubernetes.io/tls Secret's keys (kubectl create secret tls).
    assert {item["key"] for item in tls["items"]} == {"tls.crt", "tls.key"}


def test_probes_ask_the_health_service_on_the_grpc_port() -> None:
    spec = container()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc_probe = spec[probe]["grpc"]
        assert grpc_probe["port"] == port_of("grpc"), probe
        assert "service" not in grpc_probe  # "": the whole server
        # The server serves TLS only: the kubelet must speak TLS to reach it.
        assert grpc_probe["mode"] == "TLS", probe


def test_pods_ask_prometheus_to_scrape_the_metrics_port() -> None:
    annotations = only("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port_of("metrics")
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_server_runs_unprivileged_with_bounded_resources() -> None:
    pod = only("StatefulSet")["spec"]["template"]["spec"]
    spec = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert set(spec["resources"][kind]) == {"cpu", "memory"}, kind
