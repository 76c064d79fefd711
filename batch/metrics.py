"""Prometheus metrics of a shard, pushed to a Pushgateway when the shard ends (a Job's pods are gone before any
scrape). Grouped by job and shard, so every pod of the run keeps its own series and a retried pod replaces its own."""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

JOB = "lead-scoring-batch"


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
        push_to_gateway(url, job=JOB, grouping_key={"shard": str(shard)}, registry=registry, timeout=timeout)
    except OSError as error:
        sys.stderr.write(f"batch: could not push metrics to {url}: {error}\n")
        return False
    return True
