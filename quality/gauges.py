"""The job's results as Prometheus gauges: a textfile (node-exporter's collector, or promtool test input) and/or a
Pushgateway push (the CronJob's way: a batch job is gone before anyone could scrape it).

Series (labels: model_name, model_version, and tier where it says so):
  lead_scoring_quality_auc, _log_loss, _brier, _calibration_error, _base_rate, _label_coverage, _labelled_leads,
  lead_scoring_quality_reference_auc                 the model card's held-out AUC (when the card was given)
  lead_scoring_quality_tier_conversion_rate{tier}, _tier_lift{tier}, _tier_labelled_leads{tier}
  lead_scoring_quality_last_success_timestamp_seconds
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

PREFIX = "lead_scoring_quality_"
VERSION_MEASURES = {
    "auc": "auc",
    "log_loss": "log_loss",
    "brier": "brier",
    "calibration_error": "calibration_error",
    "base_rate": "conversion_rate",
    "label_coverage": "label_coverage",
    "labelled_leads": "labelled_leads",
    "reference_auc": "reference_auc",
}
TIER_MEASURES = {
    "tier_conversion_rate": "conversion_rate",
    "tier_lift": "lift",
    "tier_labelled_leads": "labelled_leads",
}
HELP = {
    "auc": "ROC AUC of the attributed scores against realised outcomes",
    "log_loss": "Log-loss of the attributed scores",
    "brier": "Brier score of the attributed scores",
    "calibration_error": "Lead-weighted mean |predicted - observed| over score deciles",
    "base_rate": "Conversion rate of all labelled leads of the version",
    "label_coverage": "Labelled leads / leads the version scored in the read window",
    "labelled_leads": "Leads with a terminal outcome attributed to a scoring of the version",
    "reference_auc": "Held-out AUC recorded in the version's model card",
    "tier_conversion_rate": "Realised conversion rate of the tier",
    "tier_lift": "Tier conversion rate / base rate",
    "tier_labelled_leads": "Labelled leads in the tier",
}


def registry_for(rows: list[dict], finished_at: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    version_gauges = {
        name: Gauge(PREFIX + name, HELP[name], ["model_name", "model_version"], registry=registry)
        for name in VERSION_MEASURES
    }
    tier_gauges = {
        name: Gauge(PREFIX + name, HELP[name], ["model_name", "model_version", "tier"], registry=registry)
        for name in TIER_MEASURES
    }
    for row in rows:
        labels = (row["model_name"], row["model_version"])
        if row["tier"] == "all":
            for name, column in VERSION_MEASURES.items():
                value = row.get(column)
                if value is not None and math.isfinite(value):  # a NaN gauge would only confuse alerts
                    version_gauges[name].labels(*labels).set(value)
        else:
            for name, column in TIER_MEASURES.items():
                value = row.get(column)
                if value is not None and math.isfinite(value):
                    tier_gauges[name].labels(*labels, row["tier"]).set(value)
    Gauge(
        PREFIX + "last_success_timestamp_seconds", "When the quality job last finished", registry=registry
    ).set(finished_at)
    return registry


def publish(
    rows: list[dict],
    finished_at: float,
    *,
    textfile: str | None,
    pushgateway: str | None,
    job: str = "lead-scoring-quality",
    namespace: str | None = None,
) -> CollectorRegistry:
    registry = registry_for(rows, finished_at)
    if textfile:
        write_to_textfile(textfile, registry)
    if pushgateway:
        # The namespace as a grouping key: the Pushgateway puts it on every series it serves, and with its usual
        # honor_labels scrape it wins over the Pushgateway pod's own namespace (monitoring), so the alerts and the
        # dashboard, which select namespace="lead-scoring", find the gauges.
        grouping = {"namespace": namespace} if namespace else {}
        push_to_gateway(pushgateway, job=job, registry=registry, grouping_key=grouping)
    return registry
