"""Prometheus metrics of a shard, pushed to a Pushgateway when the shard ends (a Job's pods are gone before any
scrape). Grouped by job and shard, so every pod of the run keeps its own series and a retried pod replaces its own."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

from batch.redaction import one_line, redact_text, redact_uri

JOB = "lead-scoring-batch"


def pushgateway_url_problem(url: str) -> str | None:
    """Why `url` cannot be a Pushgateway address, or None. Checked at start: the push comes after the commit,
    when a malformed address could only be reported, never fixed in time."""
    # prometheus_client takes host:port alone and prepends http:// itself.
    full = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(full)
        parts.port  # noqa: B018 - parses the port: 'host:x' raises here
    except ValueError as error:
        return str(error)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected http(s)://host[:port]"
    return None


def grouping_key(shard: int) -> dict[str, str]:
    """The shard, and the pod's namespace when the Job gives it (POD_NAMESPACE, from the downward API): with the
    Pushgateway's usual honor_labels scrape the series keep it, instead of the Pushgateway's own namespace."""
    namespace = os.environ.get("POD_NAMESPACE")
    return {"shard": str(shard), **({"namespace": namespace} if namespace else {})}


def push_shard_metrics(
    url: str,
    *,
    shard: int,
    shard_count: int,
    model_version: str,
    rows_scored: int,
    rows_rejected: int,
    tiers: dict[str, int],
    seconds: float,
    timeout: float = 10.0,
) -> bool:
    """True when pushed. A Pushgateway outage is reported, never fatal: the scores are already committed."""
    registry = CollectorRegistry()
    rows = Counter(
        "lead_scoring_batch_rows", "Leads of this shard by outcome", ["outcome"], registry=registry
    )
    rows.labels("scored").inc(rows_scored)
    rows.labels("rejected").inc(rows_rejected)
    by_tier = Counter(
        "lead_scoring_batch_tier_rows", "Scored leads of this shard by tier", ["tier"], registry=registry
    )
    for tier, count in tiers.items():
        by_tier.labels(tier).inc(count)
    Gauge("lead_scoring_batch_shard_duration_seconds", "Wall time of the shard", registry=registry).set(
        seconds
    )
    Gauge("lead_scoring_batch_shard_count", "Shards in this run", registry=registry).set(shard_count)
    info = Gauge(
        "lead_scoring_batch_model_info",
        "Model version that scored the shard",
        ["model_version"],
        registry=registry,
    )
    info.labels(model_version).set(1)
    try:
        push_to_gateway(url, job=JOB, grouping_key=grouping_key(shard), registry=registry, timeout=timeout)
    except (OSError, ValueError) as error:  # unreachable, refused, an HTTP error answer; a URL urllib rejects
        text = one_line(redact_text(str(error)))[:200]
        sys.stderr.write(f"batch: could not push metrics to {redact_uri(url)}: {text}\n")
        return False
    return True
