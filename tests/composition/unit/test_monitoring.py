"""deploy/monitoring and its Kubernetes component: the alert rules pass `promtool check rules`
and their own `promtool test rules` cases; every metric a rule or a dashboard panel queries is
one the processes export, with labels and values they set; each rule has its `for`, severity,
summary, description and a runbook that docs/monitoring.md answers; the PrometheusRule holds the
same groups; the component renders into each overlay and scrapes every process. promtool comes
from Debian's `prometheus` package, which `make test` installs as root; kubectl as for
test_kubernetes.py. Without them these tests fail, they never skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import services.intake.keys.ratelimits
import services.sla_monitor.metrics
import services.webhooks.metrics
import shared.metrics
from services.intake.forms.api import POST_ROUTE
from services.sla_monitor.ladder import Step
from shared.events import ClockKind
from shared.health import health_router
from shared.http_metrics import METHODS, STATUS_CLASSES, UNMATCHED

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
ALERT_TESTS = MONITORING / "alerts_test.yaml"
DASHBOARD = MONITORING / "leadflow-dashboard.json"
COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "monitoring"
DOCS = ROOT / "docs" / "monitoring.md"
METRIC_MODULES = (shared.metrics, services.webhooks.metrics, services.sla_monitor.metrics,
                  services.intake.keys.ratelimits)  # fmt: skip
# Labels Prometheus adds to what it scrapes (the target's), and the histogram's bucket bound.
TARGET_LABELS = {"namespace", "job", "instance", "pod", "container", "service", "endpoint"}
# What an exact matcher may ask of a label the code sets from a closed list.
VALUES = {
    "step": set(get_args(Step)),
    "clock": set(get_args(ClockKind)),
    "reason": {"retries_spent", "rejected"},
    "status": set(STATUS_CLASSES),
    "method": set(METHODS) | {"other"},
    "route": {POST_ROUTE.path_format, UNMATCHED},
}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
METRIC = re.compile(r"\b(leadflow_[a-z0-9_]+)(\{[^}]*\})?")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


# --- reading -------------------------------------------------------------------------------------


def _tool(name: str, where: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH: {where}; these tests do not skip.", pytrace=False)
    return found


def _promtool() -> str:
    return _tool("promtool", "Debian's prometheus package (`make test` installs it as root)")


@cache
def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@cache
def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries() -> list[str]:
    """Every panel's and variable's query, with Grafana's variables as Prometheus would get them."""
    found = [t["expr"] for p in _panels(_dashboard()["panels"]) for t in p.get("targets", [])]
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<selector>, label): the selector is the query Prometheus answers.
            found.append(variable["definition"].removeprefix("label_values(").rsplit(",", 1)[0])
    return [
        q.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$job", ".*")
        for q in found
    ]


def _exported() -> dict[str, tuple[str, set[str]]]:
    """Every sample name the modules' metrics can export → (the metric's type, its labels)."""
    names: dict[str, tuple[str, set[str]]] = {}
    for module in METRIC_MODULES:
        for metric in vars(module).values():
            if isinstance(metric, MetricWrapperBase):
                kind, labels = metric._type, set(metric._labelnames)  # noqa: SLF001
                for suffix in SUFFIXES[kind]:
                    names[metric._name + suffix] = (kind, labels)  # noqa: SLF001
    # Each one is in the registry that /metrics serves.
    registered = {family.name for family in REGISTRY.collect()}
    assert {name.removesuffix("_total") for name in names} & registered
    return names


# --- the rules -----------------------------------------------------------------------------------


def test_promtool_checks_the_rules_and_runs_their_test_cases() -> None:
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [_promtool(), "test", "rules", ALERT_TESTS.name],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_is_quiet() -> None:
    cases = [c for t in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
             for c in t["alert_rule_test"]]  # fmt: skip
    fires = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    names = {rule["alert"] for rule in _rules()}
    assert names - fires == set() and names - quiet == set()


def test_each_rule_has_its_wait_severity_and_annotations() -> None:
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    headings = set(re.findall(r"^### (\w+)$", DOCS.read_text(), flags=re.MULTILINE))
    for rule in _rules():
        name = rule["alert"]
        assert re.fullmatch(r"Leadflow[A-Z]\w+", name), name
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: for"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert all(len(text) > 20 for text in annotations.values()), name
        # The runbook names its section of docs/monitoring.md, then says what to check.
        anchor, _, check = annotations["runbook"].partition(": ")
        assert anchor.startswith("docs/monitoring.md#") and len(check) > 40, name
        assert anchor.removeprefix("docs/monitoring.md#") in {h.lower() for h in headings}, name
        assert name in headings, f"docs/monitoring.md has no section for {name}"


def test_every_metric_queried_is_exported_with_the_labels_and_values_asked() -> None:
    exported = _exported()
    queries = [rule["expr"] for rule in _rules()] + _queries()
    used = set()
    for query in queries:
        for name, selector in METRIC.findall(query):
            assert name in exported, f"{name} (in {query!r}) is exported by no process"
            used.add(name)
            kind, labels = exported[name]
            allowed = labels | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
            for label, operator, value in MATCHER.findall(selector):
                assert label in allowed, f"{name} has no label {label}"
                if operator == "=" and label in VALUES:
                    assert value in VALUES[label], f"{name}{{{label}={value!r}}} never set"
    # The signals of the brief, each queried: lag, outbox age, dead letters, webhooks exhausted
    # and disabled, SLA breaches over clocks started, HTTP 5xx and latency.
    assert {
        "leadflow_consumer_lag",
        "leadflow_outbox_oldest_age_seconds",
        "leadflow_dead_lettered_total",
        "leadflow_webhook_messages_exhausted_total",
        "leadflow_webhook_endpoints_disabled_total",
        "leadflow_sla_tiers_fired_total",
        "leadflow_sla_clocks_started_total",
        "leadflow_http_request_duration_seconds_count",
        "leadflow_http_request_duration_seconds_bucket",
    } <= used


def test_the_metric_check_catches_a_name_or_a_value_that_does_not_exist() -> None:
    exported = _exported()
    assert "leadflow_outbox_oldest_age_seconds" in exported
    assert "leadflow_outbox_oldest_age" not in exported  # a gauge has no suffix
    assert "leadflow_dead_lettered" not in exported  # a counter is read as …_total
    assert "leadflow_http_request_duration_seconds" not in exported  # a histogram's parts only
    assert "breached" not in VALUES["step"] and "500" not in VALUES["status"]


# --- the dashboard -------------------------------------------------------------------------------


def test_the_dashboard_is_valid_and_every_panel_reads_the_chosen_data_source() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "job"} <= set(variables)
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == chosen, panel["title"]
        assert panel["targets"] and all(t["datasource"] == chosen for t in panel["targets"])
        assert panel.get("description"), f"{panel['title']}: say what it shows"
        for target in panel["targets"]:
            expr = target["expr"]
            assert '$namespace"' in expr and '$job"' in expr, f"{panel['title']}: not templated"


def test_the_dashboard_s_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels(_dashboard()["panels"]):
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses them as the expressions of recording rules."""
    rules = [{"record": f"leadflow:panel_{i}", "expr": q} for i, q in enumerate(_queries())]
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_an_alert_reads_has_a_panel() -> None:
    shown = {name for q in _queries() for name, _ in METRIC.findall(q)}
    for rule in _rules():
        for name, _ in METRIC.findall(rule["expr"]):
            assert name in shown, f"{rule['alert']} reads {name}, which no panel shows"


# --- Kubernetes ----------------------------------------------------------------------------------


def test_the_prometheus_rule_holds_the_groups_of_the_rules_file() -> None:
    documents = list(yaml.safe_load_all((COMPONENT / "prometheus-rule.yaml").read_text()))
    [rule] = documents
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


@pytest.mark.parametrize("overlay", ["production", "staging"])
def test_the_component_scrapes_every_process_of_an_overlay(overlay: str, tmp_path: Path) -> None:
    """The component added to an overlay, as docs/monitoring.md says: both objects in the
    overlay's namespace, and the ServiceMonitor on every Service's metrics port and path."""
    tree = tmp_path / "kubernetes"
    shutil.copytree(ROOT / "deploy" / "kubernetes", tree)
    (tree / "overlays" / "staging" / "common" / "secrets.env").write_text(
        "LEADFLOW_DB__URL=postgresql+asyncpg://leadflow@db.staging:5432/leadflow\n"
    )
    kustomization = tree / "overlays" / overlay / "kustomization.yaml"
    text = kustomization.read_text()
    assert "\ncomponents:\n" in text
    kustomization.write_text(
        text.replace("\ncomponents:\n", "\ncomponents:\n  - ../../components/monitoring\n", 1)
    )
    kubectl = _tool("kubectl", "it renders deploy/kubernetes (`kubectl kustomize`, offline)")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    namespace = next(d for d in documents if d["kind"] == "Namespace")["metadata"]["name"]
    [monitor] = [d for d in documents if d["kind"] == "ServiceMonitor"]
    [rule] = [d for d in documents if d["kind"] == "PrometheusRule"]
    assert monitor["metadata"]["namespace"] == rule["metadata"]["namespace"] == namespace
    services = [d for d in documents if d["kind"] == "Service"]
    deployments = {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"}
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = {
        s["metadata"]["name"]
        for s in services
        if wanted.items() <= s["metadata"].get("labels", {}).items()
    }
    assert scraped == deployments  # every process, through its Service
    [endpoint] = monitor["spec"]["endpoints"]
    served = {route.path for route in health_router().routes}  # type: ignore[attr-defined]
    assert endpoint["path"] in served
    for service in services:
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
