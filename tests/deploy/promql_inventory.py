"""Every PromQL expression the operators rely on: the PrometheusRule's rules and the Grafana dashboard's targets.

`all_queries()` is the one list both the syntax test here and the live-Prometheus test reuse, so a query added to
the dashboard or the rules is checked without anyone remembering to list it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING_DIR = REPO_ROOT / "manifests" / "monitoring"
PROMETHEUS_RULE_FILE = MONITORING_DIR / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING_DIR / "grafana-dashboard.yaml"

# Values that stand in for Grafana's template variables when a query leaves Grafana.
DEFAULT_VARIABLES = {
    "namespace": "lead-scoring",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}


def prometheus_rule() -> dict:
    return yaml.safe_load(PROMETHEUS_RULE_FILE.read_text())


def rule_groups() -> list[dict]:
    """spec.groups of the PrometheusRule: exactly the content of a plain Prometheus rules file."""
    return prometheus_rule()["spec"]["groups"]


def plain_rules_file(destination: Path) -> Path:
    """Writes the PrometheusRule's groups as a file `promtool` and `prometheus --rules` accept."""
    destination.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    return destination


def alert_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def dashboard() -> dict:
    config_map = yaml.safe_load(DASHBOARD_FILE.read_text())
    (dashboard_json,) = config_map["data"].values()
    return json.loads(dashboard_json)


def dashboard_panels() -> list[dict]:
    """Panels in display order, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def substitute_variables(expr: str, variables: dict[str, str]) -> str:
    """Replaces `$name`, `${name}` and `[[name]]` the way Grafana does before sending a query."""

    def value_of(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable {name!r} in {expr!r}")
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value_of, expr)


def dashboard_queries(variables: dict[str, str] | None = None) -> dict[str, str]:
    values = {**DEFAULT_VARIABLES, **(variables or {})}
    queries = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            name = f"dashboard:{panel['title']}:{target['refId']}"
            queries[name] = substitute_variables(target["expr"], values)
    return queries


def rule_queries() -> dict[str, str]:
    queries = {}
    for rule in recording_rules():
        queries[f"record:{rule['record']}"] = rule["expr"].strip()
    for rule in alert_rules():
        queries[f"alert:{rule['alert']}"] = rule["expr"].strip()
    return queries


def all_queries(variables: dict[str, str] | None = None) -> dict[str, str]:
    """Every dashboard and rule expression by a stable, readable name, Grafana variables substituted.

    `variables` overrides DEFAULT_VARIABLES, e.g. {"namespace": ""} against a Prometheus that adds no namespace
    label (an empty label matcher then matches series without the label).
    """
    queries = rule_queries()
    for name, expr in dashboard_queries(variables).items():
        if name in queries:
            raise ValueError(f"two queries are named {name!r}")
        queries[name] = expr
    return queries
