"""deploy/grafana: a well-formed dashboard whose every query names real metrics and labels.

The metric and label names come from scraping a real server after real traffic, so a
renamed metric or label breaks this test, not a dashboard in production.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymrpc_testing import Serve
from prometheus_client.parser import text_string_to_metric_families

import gymrpc
from gymrpc.errors import InvalidActionError

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gymrpc-dashboard.json"
#: Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"instance", "job"}
#: The PromQL functions and aggregations the dashboard may use.
FUNCTIONS = {"sum", "rate", "histogram_quantile", "label_values", "max", "avg", "increase"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
CALL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*\(")
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(\w+)\s*\)")


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels() -> list[dict[str, Any]]:
    return [panel for panel in load()["panels"] if panel["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_the_dashboard_is_well_formed() -> None:
    dashboard = load()
    assert dashboard["title"]
    assert dashboard["uid"] == "gymrpc-server"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "instance", "env_id"}
    for panel in panels():
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["title"]
        assert panel["description"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used)


def test_it_shows_what_an_operator_needs() -> None:
    queries = "\n".join(expressions())
    for needed in (
        "rate(gymrpc_env_steps_total",  # steps per second
        "histogram_quantile(0.5, sum by (le, env_id) (rate(gymrpc_step_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, env_id) (rate(gymrpc_step_duration_seconds_bucket",
        "rate(grpc_server_call_started_total",  # call rates
        "sum by (grpc_method, grpc_status) (rate(grpc_server_call_duration_seconds_count",
        "sum by (reason) (rate(gymrpc_errors_total",
        "gymrpc_active_sessions",
        "sum by (env_id, ending, reason) (rate(gymrpc_episodes_total",
        "gymrpc_credentials_refused_total",
        "gymrpc_quota_refusals_total",
    ):
        assert needed in queries, needed


@pytest.fixture
def exported(serve: Serve) -> dict[str, set[str]]:
    """Every series name a real server exports after real traffic, with its labels."""
    running = serve(metrics_address="127.0.0.1:0")
    env = gymrpc.make_vec(
        "gymrpc/Turbofan-v0", 4, target=running.target, seed=0, discover_workers=False
    )
    env.reset()
    for _ in range(3):
        env.step(np.full(4, 2))  # selling ends every episode
    with pytest.raises(InvalidActionError):
        env.step(np.full(4, 9))
    env.close()
    assert running.server.metrics is not None
    url = f"http://127.0.0.1:{running.server.metrics.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_every_metric_and_label_the_dashboard_queries_is_exported(
    exported: dict[str, set[str]],
) -> None:
    queries = expressions() + [
        variable["query"]["query"]
        for variable in load()["templating"]["list"]
        if variable["type"] == "query"
    ]
    checked = set()
    for query in queries:
        selectors = SELECTOR.findall(query) + [
            (metric, f"{label}=") for metric, label in LABEL_VALUES.findall(query)
        ]
        assert selectors, f"no metric selector in {query!r}"
        available = set(TARGET_LABELS)
        for metric, matchers in selectors:
            assert metric in exported, f"{metric} is not exported (query {query!r})"
            available |= exported[metric]
            for label in MATCHER.findall(matchers):
                assert label in exported[metric] | TARGET_LABELS, (metric, label)
            checked.add(metric)
        for grouping in GROUPING.findall(query):
            for label in (part.strip() for part in grouping.split(",")):
                assert label in available, (query, label)
        for function in CALL.findall(SELECTOR.sub("", query)):
            assert function in FUNCTIONS | {"by", "without"}, (query, function)
    assert len(checked) >= 8
