"""Helpers for tests that need real storage on 127.0.0.1: azurite (Azure Blob) and moto's S3 server, each on a
free port, restartable on the same port (to simulate an outage), plus sample scored batches for the sink.

Pytest fixtures built on these live in tests/support/storage_fixtures.py.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hack.azurite import Azurite, port_open
from hack.stack import free_port

REPO = Path(__file__).resolve().parents[1]
FEATURE_NAMES = tuple(f"feature_{i:02d}" for i in range(50))


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> object:
    """Poll until condition() is truthy; the timeout only guards against hanging, it is not an assertion on speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


class AzuriteServer(Azurite):
    """azurite-blob (hack/azurite.py), plus the sink configurations the tests build on it."""

    def service_with(self, *containers: str):
        """A BlobServiceClient on this emulator, with `containers` created."""
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string, api_version="2025-11-05")
        for container in containers:
            service.create_container(container)
        return service

    def sink_config(self, tmp_path: Path, **overrides):
        """A sink on this emulator's `lake/scores`, spooling under `tmp_path`."""
        from transformer.sink import SinkConfig

        return SinkConfig(
            uri=self.url("lake", "scores"),
            spool_dir=tmp_path / "spool",
            azure_connection_string=self.connection_string,
            feature_names=FEATURE_NAMES,
            **overrides,
        )


class MotoS3Server:
    """moto's S3 API in a thread of this process; its in-memory state survives stop()/start()."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3Server:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_for(lambda: port_open(self.port), timeout=10)
        return self

    def reset(self) -> None:
        """moto keeps its buckets in process-wide memory (they survive stop/start): start each test empty."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback http

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        wait_for(lambda: not port_open(self.port), timeout=10)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")


# ---- sample data ---------------------------------------------------------------------------------------------


def file_sink_config(tmp_path: Path, **overrides):
    """A sink on a file:// lake at `tmp_path/lake`, spooling at `tmp_path/spool`, with the 50 test features."""
    from transformer.sink import SinkConfig

    return SinkConfig(
        **{
            "uri": (tmp_path / "lake").as_uri(),
            "spool_dir": tmp_path / "spool",
            "feature_names": FEATURE_NAMES,
            **overrides,
        }
    )


def sample_batch(
    leads: int,
    *,
    scored_at: datetime | None = None,
    model_name: str = "lead-scoring",
    seed: int = 0,
    with_features: bool = True,
    width: int = 50,
):
    from transformer.sink import ScoredBatch

    rng = np.random.default_rng(seed)
    scores = rng.random(leads, dtype=np.float32)
    buckets = np.minimum(5, (scores * 5).astype(np.int8) + 1).astype(np.int8)
    features = rng.random((leads, width), dtype=np.float32) if with_features else None
    if features is not None and leads:
        features[0, 3] = np.nan  # a missing feature
    request_id = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | seed))
    return ScoredBatch(
        # Deterministic (a uuid5 of the request id) so a batch rebuilt in another process is the same scoring.
        scoring_id=str(uuid.uuid5(uuid.NAMESPACE_URL, request_id)),
        request_id=request_id,
        scored_at=scored_at or datetime.now(UTC),
        model_name=model_name,
        model_version="2025.01.1",
        api_key_name="crm-prod",
        protocol="grpc" if seed % 2 else "rest",
        request_form=("v1_instances", "v2_columns", "v2_tensor")[seed % 3],
        latency_ms=1.5 + seed,
        lead_ids=[f"lead-{seed}-{i}" for i in range(leads)],
        scores=scores,
        buckets=buckets,
        tiers=["ABCDE"[5 - int(b)] for b in buckets],
        features=features,
    )


def expected_rows(
    batches: Iterable, feature_names: tuple[str, ...] = FEATURE_NAMES, include_features: bool = True
):
    """The rows the lake must hold for these batches, as pyarrow's to_pylist() returns them, sorted by the
    dedupe key (scoring_id, row)."""
    rows = []
    for batch in batches:
        for i, lead_id in enumerate(batch.lead_ids):
            row = {
                "scoring_id": batch.scoring_id,
                "request_id": batch.request_id,
                "row": i,
                "lead_id": lead_id,
                "scored_at": batch.scored_at,
                "model_name": batch.model_name,
                "model_version": batch.model_version,
                "score": float(batch.scores[i]),
                "bucket": int(batch.buckets[i]),
                "tier": batch.tiers[i],
                "api_key_name": batch.api_key_name,
                "protocol": batch.protocol,
                "request_form": batch.request_form,
                "latency_ms": float(np.float32(batch.latency_ms)),
                "schema_version": 2,
            }
            if include_features:
                for j, name in enumerate(feature_names):
                    value = None if batch.features is None else float(batch.features[i, j])
                    row[f"f_{name}"] = None if value is None or math.isnan(value) else value
            rows.append(row)
    return sorted(rows, key=lambda r: (r["scoring_id"], r["row"]))


def sorted_rows(table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["scoring_id"], r["row"]))
