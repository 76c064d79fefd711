"""The benchmark's reference peers answer correctly: real processes on loopback, one scored request each. Not timed."""

from __future__ import annotations

import secrets

import httpx
import numpy as np
import orjson
import pytest

from hack.bench_peers.launch import start_fastapi_service, start_stock_transformer
from hack.bench_peers.workload import (
    TOLERANCE,
    Workload,
    lead_objects,
    max_difference,
    peer_scores,
    v2_scores,
    v2_tensor_body,
)
from hack.stack import start_predictor


@pytest.fixture(scope="module")
def workload(small_artifact):
    return Workload.build(small_artifact, batch_size=5)


def test_workload_has_no_missing_values_and_round_trips_exactly(workload):
    assert not np.isnan(workload.batch).any()
    body = v2_tensor_body(workload.batch)
    data = np.asarray(orjson.loads(body)["inputs"][0]["data"], dtype=np.float32).reshape(workload.batch.shape)
    assert np.array_equal(data, workload.batch)


def test_stock_kserve_transformer_forwards_to_the_predictor(small_artifact, workload, tmp_path):
    predictor = start_predictor(small_artifact, tmp_path)
    transformer = None
    try:
        predictor.wait_ready()
        transformer = start_stock_transformer(tmp_path, predictor.url.removeprefix("http://"), "v2")
        transformer.wait_ready()
        answer = httpx.post(f"{transformer.url}/v2/models/lead-scoring/infer", content=v2_tensor_body(workload.batch),
                            headers={"content-type": "application/json"}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert max_difference(v2_scores(answer.json(), "output-0"), workload.batch_scores) <= TOLERANCE
    finally:
        if transformer is not None:
            transformer.stop()
        predictor.stop()


def test_plain_fastapi_peer_scores_and_checks_the_key(small_artifact, workload, tmp_path):
    key = secrets.token_urlsafe(12)
    peer = start_fastapi_service(small_artifact, tmp_path, key)
    try:
        peer.wait_ready(path="/healthz")
        leads = lead_objects(workload.batch)
        single = httpx.post(f"{peer.url}/score", json=leads[0], headers={"x-api-key": key}, timeout=10)
        assert single.status_code == 200, single.text
        assert max_difference(peer_scores(single.json()), workload.batch_scores[:1]) <= TOLERANCE
        assert single.json()["tier"] in set("ABCDE")
        batch = httpx.post(f"{peer.url}/score/batch", json={"leads": leads}, headers={"x-api-key": key}, timeout=10)
        assert batch.status_code == 200, batch.text
        assert max_difference(peer_scores(batch.json()), workload.batch_scores) <= TOLERANCE
        assert httpx.post(f"{peer.url}/score", json=leads[0], headers={"x-api-key": "wrong"}).status_code == 401
    finally:
        peer.stop()
