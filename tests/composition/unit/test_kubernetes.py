"""deploy/kubernetes: every overlay renders with `kubectl kustomize`, every rendered object
validates against the Kubernetes schemas (kubernetes-validate, offline) or, for the kinds of
KEDA, External Secrets and Strimzi that those schemas do not hold, against the checks below;
and the manifests agree with the code: commands, ports, probe paths, settings, consumer groups,
topics. kubectl is required: without it these tests fail, they never skip."""

from __future__ import annotations

import atexit
import base64
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app
from shared.config import HttpSettings, TopicSettings

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["production", "staging"]
# Each overlay's migration Job is built from <overlay>/migrate.
BUILDS = [*OVERLAYS, *(f"{name}/migrate" for name in OVERLAYS), "../strimzi"]
# The oldest Kubernetes these manifests are meant for, and the newest schemas bundled.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]

# Process → the HttpSettings field of its port.
PORTS = {
    "intake": "intake_port",
    "scoring": "scoring_port",
    "sla-monitor": "sla_monitor_port",
    "webhooks": "webhooks_port",
    "analytics": "analytics_port",
}
TOPICS = TopicSettings()
# Each consumer process: its consumer groups (shared.consumer: "<prefix>.<CONSUMER>") and their
# topics, as services/*/main.py and services/processes.py start them. The first group is the
# one KEDA scales on.
GROUPS = {
    "scoring": {
        "scoring": [TOPICS.intake],
        "routing": [TOPICS.sla],
        "handoff": [TOPICS.lifecycle],
    },
    "webhooks": {"webhooks": [TOPICS.lifecycle, TOPICS.sla]},
    "sla-monitor": {
        "sla-monitor": [TOPICS.lifecycle, TOPICS.intake],
        "sla-notifier": [TOPICS.sla],
    },
    "analytics": {"analytics": [TOPICS.intake, TOPICS.lifecycle]},
}
# Stand-ins for the Secret's values when the rendered environment is loaded as settings.
SAMPLE_SECRETS = {
    "LEADFLOW_DB__URL": "postgresql+asyncpg://leadflow@db.internal:5432/leadflow",
    "LEADFLOW_AUTH__SECRET_KEYS": '["sample-key-for-the-test"]',
    "LEADFLOW_KAFKA__SASL_USERNAME": "leadflow",
    "LEADFLOW_KAFKA__SASL_PASSWORD": "sample-password-for-the-test",
}
STAGING_SECRETS = (
    "LEADFLOW_DB__URL=postgresql+asyncpg://leadflow@db.staging:5432/leadflow\n"
    'LEADFLOW_AUTH__SECRET_KEYS=["staging-sample-key"]\n'
)


# --- rendering -----------------------------------------------------------------------------------


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not on PATH: it renders deploy/kubernetes (`kubectl kustomize`, offline, "
            "no cluster needed). Install kubectl (it bundles Kustomize v5); these tests do not "
            "skip.",
            pytrace=False,
        )
    return found


@cache
def _tree() -> Path:
    """deploy/kubernetes copied aside, with the staging overlay's secrets.env (which git never
    holds) made of sample values, so every overlay builds as an operator's would."""
    aside = Path(tempfile.mkdtemp(prefix="leadflow-kubernetes-"))
    atexit.register(shutil.rmtree, aside, True)
    copy = aside / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    (copy / "overlays" / "staging" / "common" / "secrets.env").write_text(STAGING_SECRETS)
    return copy


@cache
def _render(build: str) -> tuple[dict[str, Any], ...]:
    path = _tree() / "overlays" / build
    result = subprocess.run(
        [_kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {build}:\n{result.stderr}"
    documents = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    assert documents, f"{build} rendered nothing"
    return documents


def _of(build: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _render(build) if d["kind"] == kind}


def _deployments(overlay: str) -> dict[str, dict[str, Any]]:
    return _of(overlay, "Deployment")


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _config(overlay: str) -> dict[str, str]:
    [config] = [m for n, m in _of(overlay, "ConfigMap").items() if n.startswith("leadflow-config")]
    data = config["data"]
    assert isinstance(data, dict)
    return data


def test_kubectl_renders_every_overlay() -> None:
    for build in BUILDS:
        _render(build)


def test_the_staging_overlay_needs_its_secrets_file_and_git_ignores_it() -> None:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(KUBERNETES / "overlays" / "staging")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if not (KUBERNETES / "overlays" / "staging" / "common" / "secrets.env").exists():
        assert result.returncode != 0 and "secrets.env" in result.stderr
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/kubernetes/overlays/staging/common/secrets.env"],
        cwd=ROOT,
    )
    assert ignored.returncode == 0, ".gitignore must keep the staging secrets.env out of git"


# --- schemas -------------------------------------------------------------------------------------


def _require(document: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    value: Any = document
    for part in path.split("."):
        assert isinstance(value, dict) and part in value, f"{document['kind']}: no {path}"
        value = value[part]
    assert isinstance(value, kind), f"{document['kind']}: {path} is {value!r}"
    return value


def _check_scaled_object(document: dict[str, Any]) -> None:
    assert document["apiVersion"] == "keda.sh/v1alpha1"
    _require(document, "spec.scaleTargetRef.name", str)
    low = _require(document, "spec.minReplicaCount", int)
    high = _require(document, "spec.maxReplicaCount", int)
    assert 1 <= low <= high, "at least one replica: the processes sweep and retry without lag"
    for trigger in _require(document, "spec.triggers", list):
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        known = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"}
        known |= {"offsetResetPolicy", "sasl", "tls"}
        assert set(metadata) <= known, set(metadata) - known
        assert {"bootstrapServers", "consumerGroup", "lagThreshold"} <= set(metadata)
        assert all(isinstance(value, str) for value in metadata.values()), metadata
        assert int(metadata["lagThreshold"]) > 0
        assert metadata.get("offsetResetPolicy", "latest") in ("earliest", "latest")
        assert metadata.get("sasl", "none") in ("none", "plaintext", "scram_sha256", "scram_sha512")
        assert set(trigger) <= {"type", "metadata", "authenticationRef"}


def _check_trigger_authentication(document: dict[str, Any]) -> None:
    assert document["apiVersion"] == "keda.sh/v1alpha1"
    for ref in _require(document, "spec.secretTargetRef", list):
        assert set(ref) == {"parameter", "name", "key"}, ref
        assert ref["parameter"] in {"username", "password", "ca", "cert", "key", "sasl", "tls"}


def _check_external_secret(document: dict[str, Any]) -> None:
    assert document["apiVersion"] == "external-secrets.io/v1"
    _require(document, "spec.secretStoreRef.name", str)
    assert _require(document, "spec.secretStoreRef.kind", str) in (
        "SecretStore",
        "ClusterSecretStore",
    )
    assert _require(document, "spec.target.name", str) == "leadflow-secrets"
    assert document["spec"].get("data") or document["spec"].get("dataFrom")


def _check_strimzi(document: dict[str, Any]) -> None:
    assert document["apiVersion"] == "kafka.strimzi.io/v1beta2"
    if document["kind"] != "Kafka":
        assert isinstance(_require(document, "metadata.labels", dict)["strimzi.io/cluster"], str)
    if document["kind"] == "KafkaTopic":
        assert _require(document, "spec.partitions", int) >= 1
        assert _require(document, "spec.replicas", int) >= 1
        _require(document, "spec.topicName", str)
    elif document["kind"] == "KafkaUser":
        assert _require(document, "spec.authentication.type", str) in ("scram-sha-512", "tls")
        operations = {"Read", "Write", "Create", "Describe", "Alter", "IdempotentWrite"}
        for acl in _require(document, "spec.authorization.acls", list):
            assert acl["resource"]["type"] in ("topic", "group", "cluster"), acl
            assert set(acl["operations"]) <= operations, acl
    elif document["kind"] == "KafkaNodePool":
        _require(document, "spec.replicas", int)
        assert set(_require(document, "spec.roles", list)) <= {"broker", "controller"}
    else:
        for listener in _require(document, "spec.kafka.listeners", list):
            assert {"name", "port", "type", "tls"} <= set(listener), listener


# The kinds the bundled Kubernetes schemas do not hold (CRDs), each checked by hand instead.
CUSTOM_KINDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "ScaledObject": _check_scaled_object,
    "TriggerAuthentication": _check_trigger_authentication,
    "ExternalSecret": _check_external_secret,
    "Kafka": _check_strimzi,
    "KafkaNodePool": _check_strimzi,
    "KafkaTopic": _check_strimzi,
    "KafkaUser": _check_strimzi,
}


def _validate(document: dict[str, Any], version: str) -> None:
    if document["kind"] in CUSTOM_KINDS:
        CUSTOM_KINDS[document["kind"]](document)
        return
    kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("build", BUILDS)
def test_every_rendered_object_validates(build: str, version: str) -> None:
    problems = []
    for document in _render(build):
        try:
            _validate(document, version)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            problems.append(f"{document['kind']} {document['metadata']['name']}: {where}: {error}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{document['kind']}: no schema, and not one of CUSTOM_KINDS")
    assert not problems, "\n".join(problems)


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = dict(_deployments("production")["intake"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    with pytest.raises(AssertionError):
        _check_scaled_object({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"})


# --- the Deployments against the code ------------------------------------------------------------


def _health_paths() -> set[str]:
    from shared.health import health_router

    return {route.path for route in health_router().routes}  # type: ignore[attr-defined]


def _port(container: dict[str, Any], name: str | int) -> int:
    if isinstance(name, int):
        return name
    [port] = [p["containerPort"] for p in container["ports"] if p.get("name") == name]
    assert isinstance(port, int)
    return port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_deployment_per_process_running_its_command(overlay: str) -> None:
    deployments = _deployments(overlay)
    assert set(deployments) == set(PORTS)
    images = {_container(d)["image"] for d in deployments.values()}
    assert len(images) == 1 and ":" in images.pop(), "one image, with a tag"
    for name, deployment in deployments.items():
        container = _container(deployment)
        assert container["args"] == [name]
        assert "command" not in container, "the image's ENTRYPOINT is `leadflow`"
        result = CliRunner().invoke(app, [*container["args"], "--help"])
        assert result.exit_code == 0, f"leadflow {name}: {result.output}"
        assert "replicas" not in deployment["spec"], "the autoscaler owns the count"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_on_the_health_paths_and_the_process_port(overlay: str) -> None:
    paths = _health_paths()
    assert {"/healthz", "/readyz", "/metrics"} <= paths
    for name, deployment in _deployments(overlay).items():
        container = _container(deployment)
        expected = HttpSettings.model_fields[PORTS[name]].default
        assert [p["containerPort"] for p in container["ports"]] == [expected], name
        probes = {
            kind: container.get(f"{kind}Probe") for kind in ("startup", "liveness", "readiness")
        }
        assert probes["liveness"] and probes["readiness"], f"{name}: both probes"
        wanted = {"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}
        for kind, probe in probes.items():
            if probe is None:
                continue
            get = probe["httpGet"]
            assert get["path"] == wanted[kind] and get["path"] in paths, (name, kind)
            assert _port(container, get["port"]) == expected, (name, kind)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == expected


def _workloads(overlay: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from _deployments(overlay).items()
    yield from _of(f"{overlay}/migrate", "Job").items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context_and_resources(overlay: str) -> None:
    for name, workload in _workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name
        assert pod["automountServiceAccountToken"] is False, name
        container = _container(workload)
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert "privileged" not in context and "add" not in context["capabilities"], name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp is an emptyDir"
        resources = container["resources"]
        for what in ("cpu", "memory"):
            assert what in resources["requests"] and what in resources["limits"], (name, what)


def test_the_image_user_is_the_one_the_pods_run_as() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.MULTILINE)
    assert "--uid 10001" in dockerfile and "--gid 10001" in dockerfile


def _environment(overlay: str, container: dict[str, Any], tmp: Path) -> dict[str, str]:
    """The process's environment as the kubelet would build it, the Secret's values stood in
    for by samples (an optional key absent)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config = _of(overlay, "ConfigMap")[source["configMapRef"]["name"]]
        env.update(config["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref.get("optional"):
            continue
        env[item["name"]] = SAMPLE_SECRETS[item["name"]]
    if cafile := env.get("LEADFLOW_KAFKA__SSL_CAFILE"):
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert any(cafile.startswith(mount + "/") for mount in mounts), f"{cafile} not mounted"
        env["LEADFLOW_KAFKA__SSL_CAFILE"] = str(tmp / "ca.crt")
        (tmp / "ca.crt").write_text("not read by the settings\n")
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_environment_loads_as_each_process_settings(
    overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from services.settings import load_settings

    for name, workload in _workloads(overlay):
        env = _environment(overlay, _container(workload), tmp_path)
        assert set(env) - {"FORWARDED_ALLOW_IPS"} == {k for k in env if k.startswith("LEADFLOW_")}
        with monkeypatch.context() as patched:
            for variable in [v for v in os.environ if v.startswith("LEADFLOW_")]:
                patched.delenv(variable)
            for variable, value in env.items():
                patched.setenv(variable, value)
            settings = load_settings()
        assert settings.db.url == SAMPLE_SECRETS["LEADFLOW_DB__URL"], name
        if name in PORTS:
            assert settings.http.host == "0.0.0.0", name
            assert (
                settings.kafka.bootstrap_servers
                == _config(overlay)["LEADFLOW_KAFKA__BOOTSTRAP_SERVERS"]
            )
        if name == "intake":
            assert [k.get_secret_value() for k in settings.auth.secret_keys] == [
                "sample-key-for-the-test"
            ]


# --- secrets -------------------------------------------------------------------------------------

SECRET_NAMES = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DB__URL|PRINCIPALS)", re.IGNORECASE)
SECRET_VALUES = [
    re.compile(r"\bsk_[A-Za-z0-9_]{6,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{6,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^\s/:@]+:[^\s/@]+@"),  # a password in a URL
    re.compile(r"\b(password|passwd|token|secret)[ \t]*[:=][ \t]*['\"]?[A-Za-z0-9+/_\-]{8,}", re.I),
    re.compile(r"\b[0-9a-f]{32,}\b"),  # a hex key (openssl rand -hex)
]


def _secret_looking(text: str) -> list[str]:
    return [match.group(0) for pattern in SECRET_VALUES for match in pattern.finditer(text)]


def test_the_secret_patterns_catch_secrets() -> None:
    for text in (
        'LEADFLOW_AUTH__SECRET_KEYS=["sk_live_0123456789"]',
        "postgresql+asyncpg://leadflow:hunter2@db:5432/leadflow",
        "password: s3cretvalue",
        "key: " + "ab" * 32,
    ):
        assert _secret_looking(text), text


def test_no_file_under_deploy_kubernetes_holds_a_secret() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for path in sorted(KUBERNETES.rglob("*"))
        if path.is_file() and path.name != "secrets.env"
        if (hits := _secret_looking(path.read_text()))
    }
    assert not found, found


@pytest.mark.parametrize("build", BUILDS)
def test_no_rendered_object_holds_a_secret(build: str) -> None:
    for document in _render(build):
        name = f"{document['kind']} {document['metadata']['name']}"
        if document["kind"] == "Secret":
            # Only the staging overlay makes one, from its secrets.env (the test's samples).
            assert build.startswith("staging"), f"{name}: a literal Secret in {build}"
            data = {k: base64.b64decode(v).decode() for k, v in document["data"].items()}
            assert data == dict(line.split("=", 1) for line in STAGING_SECRETS.splitlines())
            continue
        assert not _secret_looking(yaml.safe_dump(document)), name
        if document["kind"] == "ConfigMap":
            named = [key for key in document["data"] if SECRET_NAMES.search(key)]
            assert not named, f"{name}: secrets belong in the Secret: {named}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_reach_the_processes_by_secret_key_ref(overlay: str) -> None:
    secret_names = {n for n in _of(overlay, "Secret") if n.startswith("leadflow-secrets")} or {
        "leadflow-secrets"
    }
    for name, workload in _workloads(overlay):
        for item in _container(workload).get("env", []):
            if not SECRET_NAMES.search(item["name"]):
                continue
            assert "value" not in item, f"{name}: {item['name']} as a literal value"
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secret_names | {"leadflow-kafka"}, (name, ref)
    if overlay == "production":
        assert "leadflow-secrets" in _of(overlay, "ExternalSecret")


# --- autoscaling, disruption budgets --------------------------------------------------------------


def _consumer_names() -> set[str]:
    """Every consumer the code starts: the ``CONSUMER = "…"`` constants under services/."""
    names = set()
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r'^CONSUMER = "([a-z-]+)"$', path.read_text(), re.MULTILINE))
    return names


def test_the_groups_named_here_are_the_code_s() -> None:
    assert {group for groups in GROUPS.values() for group in groups} == _consumer_names()


def _partitions(overlay: str) -> dict[str, int]:
    """Each topic's partitions: the KafkaTopics of deploy/kubernetes/strimzi where the overlay
    uses them (Leadflow then creates none), else LEADFLOW_KAFKA__PARTITIONS."""
    if _config(overlay).get("LEADFLOW_KAFKA__CREATE_TOPICS") == "false":
        topics = _of("../strimzi", "KafkaTopic").values()
        return {t["spec"]["topicName"]: t["spec"]["partitions"] for t in topics}
    return dict.fromkeys(TOPICS.all(), int(_config(overlay)["LEADFLOW_KAFKA__PARTITIONS"]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumers_scale_on_their_group_s_lag_within_their_partitions(overlay: str) -> None:
    scaled = _of(overlay, "ScaledObject")
    assert set(scaled) == set(GROUPS), "one ScaledObject per consumer process"
    partitions = _partitions(overlay)
    bootstrap = _config(overlay)["LEADFLOW_KAFKA__BOOTSTRAP_SERVERS"]
    authentications = _of(overlay, "TriggerAuthentication")
    for name, groups in GROUPS.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name and name in _deployments(overlay)
        [trigger] = spec["triggers"]
        metadata = trigger["metadata"]
        main, topics = next(iter(groups.items()))
        assert metadata["consumerGroup"] == f"{TOPICS.prefix}.{main}"
        assert metadata.get("topic", topics[0]) in topics
        assert metadata["bootstrapServers"] == bootstrap
        assert metadata["offsetResetPolicy"] == "earliest", "as shared.kafka's consumers"
        # Every pod needs a partition of each group's topics to be ready (/readyz).
        fewest = min(partitions[topic] for group in groups.values() for topic in group)
        assert spec["maxReplicaCount"] <= fewest, (name, fewest)
        secure = _config(overlay).get("LEADFLOW_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
        if secure.startswith("SASL"):
            assert trigger["authenticationRef"]["name"] in authentications
            keda = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256"}
            keda["SCRAM-SHA-512"] = "scram_sha512"
            assert metadata["sasl"] == keda[_config(overlay)["LEADFLOW_KAFKA__SASL_MECHANISM"]]
        if secure.endswith("SSL"):
            assert metadata["tls"] == "enable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_intake_scales_on_cpu_and_every_process_has_a_disruption_budget(overlay: str) -> None:
    [hpa] = _of(overlay, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "intake",
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    budgets = _of(overlay, "PodDisruptionBudget").values()
    for name, deployment in _deployments(overlay).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name
        spec = matching[0]["spec"]
        if "minAvailable" in spec:
            # A drain waits forever on a budget the smallest replica count cannot meet.
            assert name == "intake" and spec["minAvailable"] < hpa["spec"]["minReplicas"]


# --- network, ingress ----------------------------------------------------------------------------


def _policies(overlay: str) -> dict[str, dict[str, Any]]:
    return _of(overlay, "NetworkPolicy")


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _egress_ports(overlay: str, labels: dict[str, str]) -> set[int]:
    return {
        port["port"]
        for policy in _policies(overlay).values()
        if _selects(policy, labels)
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(overlay: str) -> None:
    policies = _policies(overlay)
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    bootstrap = _config(overlay)["LEADFLOW_KAFKA__BOOTSTRAP_SERVERS"]
    broker_ports = {int(server.rsplit(":", 1)[1]) for server in bootstrap.split(",")}
    for name, workload in _workloads(overlay):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ports = _egress_ports(overlay, labels)
        assert {53, 5432} <= ports, name
        if name in PORTS:
            assert broker_ports <= ports, name
        if name in ("webhooks", "intake"):
            assert 443 in ports, f"{name} calls HTTPS endpoints"
        ingress_from = [
            rule
            for policy in policies.values()
            if _selects(policy, labels)
            for rule in policy["spec"].get("ingress", [])
        ]
        if name in PORTS:
            assert any(
                rule["from"][0]["namespaceSelector"]["matchLabels"]
                == {"kubernetes.io/metadata.name": "monitoring"}
                for rule in ingress_from
            ), f"{name}: metrics scraping"
        from_ingress = [
            r
            for r in ingress_from
            if r["from"][0]["namespaceSelector"]["matchLabels"]
            == {"kubernetes.io/metadata.name": "ingress-nginx"}
        ]
        assert bool(from_ingress) == (name == "intake"), name


def _public_paths(tmp_path: Path) -> set[str]:
    from services.api import create_app
    from services.settings import load_settings
    from services.sla_monitor.board import router as board
    from shared.runtime import Runtime

    runtime = Runtime.create(load_settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/a.db"}))
    paths = set(create_app(runtime).openapi()["paths"]) | {"/docs", "/openapi.json"}
    return paths | {route.path for route in board.routes}  # type: ignore[attr-defined]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_the_api_and_the_console_to_intake_only(
    overlay: str, tmp_path: Path
) -> None:
    [ingress] = _of(overlay, "Ingress").values()
    [service] = [s for n, s in _of(overlay, "Service").items() if n == "intake"]
    [rule] = ingress["spec"]["rules"]
    assert [rule["host"]] == ingress["spec"]["tls"][0]["hosts"]
    assert _config(overlay)["LEADFLOW_HTTP__PUBLIC_URL"] == f"https://{rule['host']}"
    public = _public_paths(tmp_path)
    routed = set()
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend["name"] == "intake"
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
        prefix = path["path"]
        matches = {p for p in public if p == prefix or p.startswith(prefix.rstrip("/") + "/")}
        assert matches, f"{prefix} routes to no path of the app"
        routed |= matches
    assert {"/v1/leads", "/ops/sla"} <= routed
    assert not routed & {"/metrics", "/healthz", "/readyz"}, "health and metrics stay inside"


# --- the migration Job, namespaces ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_is_named_after_the_release_it_migrates_for(overlay: str) -> None:
    [(name, job)] = _of(f"{overlay}/migrate", "Job").items()
    container = _container(job)
    assert container["args"] == ["db", "upgrade"]
    assert CliRunner().invoke(app, ["db", "upgrade", "--help"]).exit_code == 0
    image = _container(_deployments(overlay)["intake"])["image"]
    assert container["image"] == image, "the Job migrates for the image that rolls out next"
    tag = image.rsplit(":", 1)[1]
    assert name == "leadflow-migrate-" + re.sub(r"[^a-z0-9]+", "-", tag.lower())
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    refs = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in container["env"]
        if "valueFrom" in item
    }
    deployment_refs = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in _container(_deployments(overlay)["scoring"])["env"]
        if item["name"] == "LEADFLOW_DB__URL"
    }
    assert refs == deployment_refs, "the Job and the services read the same Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_in_the_overlay_s_namespace(overlay: str) -> None:
    [namespace] = _of(overlay, "Namespace")
    labels = _of(overlay, "Namespace")[namespace]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for build in (overlay, f"{overlay}/migrate"):
        for document in _render(build):
            if document["kind"] != "Namespace":
                assert document["metadata"]["namespace"] == namespace, document["kind"]


# --- Strimzi -------------------------------------------------------------------------------------


def test_strimzi_makes_every_topic_leadflow_uses() -> None:
    topics = _of("../strimzi", "KafkaTopic").values()
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(TOPICS.all())
    [pool] = _of("../strimzi", "KafkaNodePool").values()
    [cluster] = _of("../strimzi", "Kafka")
    for topic in [*topics, pool, *_of("../strimzi", "KafkaUser").values()]:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        if topic["kind"] == "KafkaTopic":
            assert topic["spec"]["replicas"] <= pool["spec"]["replicas"]


def test_strimzi_user_acls_cover_the_code_s_groups_and_topics_and_no_more() -> None:
    [user] = _of("../strimzi", "KafkaUser").values()
    acls = user["spec"]["authorization"]["acls"]
    groups = {a["resource"]["name"] for a in acls if a["resource"]["type"] == "group"}
    assert groups == {f"{TOPICS.prefix}.{name}" for name in _consumer_names()}
    topics = {
        a["resource"]["name"]: set(a["operations"])
        for a in acls
        if a["resource"]["type"] == "topic"
    }
    assert set(topics) == set(TOPICS.all())
    assert all(
        a["resource"].get("patternType", "literal") == "literal"
        for a in acls
        if "name" in a["resource"]
    )
    consumed = {topic for groups_ in GROUPS.values() for ts in groups_.values() for topic in ts}
    for topic, operations in topics.items():
        assert ("Read" in operations) == (topic in consumed), topic
        assert "Create" not in operations, "the topics are made by the Topic Operator"
    for events in (TOPICS.intake, TOPICS.lifecycle, TOPICS.sla, TOPICS.dead_letter):
        assert "Write" in topics[events]


def test_the_production_overlay_reaches_the_strimzi_cluster_by_its_tls_listener() -> None:
    [cluster] = _of("../strimzi", "Kafka").values()
    [listener] = [x for x in cluster["spec"]["kafka"]["listeners"] if x["tls"]]
    config = _config("production")
    expected = f"{cluster['metadata']['name']}-kafka-bootstrap.kafka.svc:{listener['port']}"
    assert config["LEADFLOW_KAFKA__BOOTSTRAP_SERVERS"] == expected
    assert config["LEADFLOW_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert listener["authentication"]["type"] == config["LEADFLOW_KAFKA__SASL_MECHANISM"].lower()
    [user] = _of("../strimzi", "KafkaUser").values()
    assert user["spec"]["authentication"]["type"] == listener["authentication"]["type"]
