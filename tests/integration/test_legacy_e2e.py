"""SageMakerPredictor and AzureMLPredictor against real HTTP servers on loopback, and shadow mode beside the live path.

The booster server (tests/legacy_servers.py) holds requests at a gate the test controls: "slow" and "still running"
are states the test creates, never durations it measures.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pyarrow.dataset as ds
import pytest
import xgboost as xgb
from prometheus_client import REGISTRY

from contract.model_card import load_card
from predictor.synthetic import sample_population
from tests.legacy_servers import LegacyBoosterServer, MotoSageMaker
from tests.sink_servers import free_port, wait_for
from transformer.errors import PredictorTimeout, PredictorUnavailable
from transformer.extras.shadow import ShadowScorer
from transformer.predictors.inprocess import InProcessBooster
from transformer.predictors.legacy import AzureMLPredictor, SageMakerPredictor
from transformer.sink import ScoreSink, SinkConfig

ENDPOINT = "lead-scoring-legacy"
AZURE_KEY = "azure-key-7f3a9c"


@pytest.fixture(scope="module")
def booster(small_artifact):
    return xgb.Booster(
        params={"nthread": 1}, model_file=bytearray((small_artifact / "model.ubj").read_bytes())
    )


@pytest.fixture(scope="module")
def leads():
    x, _ = sample_population(64, seed=99)  # NaN for missing features, as the transformer passes them
    assert np.isnan(x).any()
    return x.astype(np.float32)


@pytest.fixture
def server(booster):
    srv = LegacyBoosterServer(booster, ENDPOINT, azure_key=AZURE_KEY).start()
    yield srv
    srv.stop()


@pytest.fixture
def aws_env(monkeypatch):
    # Any credentials: the servers check only that requests are signed; nothing may reach IMDS or a real profile.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)


def own_scores(booster, matrix):
    return booster.predict(xgb.DMatrix(matrix))


def run(coro):
    return asyncio.run(coro)


async def predict_once(predictor, matrix, headers=None):
    try:
        return await predictor.predict(matrix, headers)
    finally:
        await predictor.close()


# ---- SageMaker ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_sagemaker_endpoint_gives_the_boosters_own_scores(server, booster, leads, aws_env, content_type):
    predictor = SageMakerPredictor(ENDPOINT, "us-east-1", content_type, 10.0, endpoint_url=server.url)
    scores = run(predict_once(predictor, leads, {"x-request-id": "req-42"}))
    assert scores.dtype == np.float32 and scores.shape == (len(leads),)
    np.testing.assert_array_equal(scores, own_scores(booster, leads))
    assert server.last_headers["content-type"] == content_type
    assert (
        server.last_headers["x-amzn-sagemaker-inference-id"] == "req-42"
    )  # the request id reaches data capture


def test_sagemaker_failures_are_503_with_the_reason(server, leads, aws_env):
    async def attempt(predictor):
        with pytest.raises(PredictorUnavailable) as caught:
            await predict_once(predictor, leads[:2])
        return caught.value

    missing = run(attempt(SageMakerPredictor("no-such-endpoint", "us-east-1", endpoint_url=server.url)))
    assert "no such endpoint" in missing.message and missing.http_status == 503
    server.fail_status = 500
    broken = run(attempt(SageMakerPredictor(ENDPOINT, "us-east-1", endpoint_url=server.url)))
    assert "ModelError" in broken.message and f"/aws/sagemaker/Endpoints/{ENDPOINT}" in broken.message
    down = run(
        attempt(SageMakerPredictor(ENDPOINT, "us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}"))
    )
    assert "unreachable" in down.message and type(down) is PredictorUnavailable


def test_a_sagemaker_endpoint_slower_than_the_timeout_is_a_504(server, leads, aws_env):
    server.gate.clear()  # hold every request until the test is over
    predictor = SageMakerPredictor(ENDPOINT, "us-east-1", timeout_seconds=0.3, endpoint_url=server.url)
    with pytest.raises(PredictorTimeout) as caught:
        run(predict_once(predictor, leads[:2]))
    assert (
        caught.value.http_status == 504 and server.received == 1
    )  # one attempt: no retry behind the client's back


def test_sagemaker_readiness_follows_describe_endpoint(server, aws_env):
    async def ready(name):
        predictor = SageMakerPredictor(name, "us-east-1", endpoint_url=server.url)
        try:
            return await predictor.ready()
        finally:
            await predictor.close()

    assert run(ready(ENDPOINT)) is True
    assert run(ready("no-such-endpoint")) is False


def test_sagemaker_wire_and_readiness_against_moto(aws_env):
    moto = MotoSageMaker().start()
    try:
        moto.create_endpoint(ENDPOINT)
        moto.queue_results(
            [
                ("0.125,0.5,0.875", "text/csv"),
                ('{"predictions": [{"score": 0.25}, {"score": 0.75}]}', "application/json"),
            ]
        )

        async def scenario():
            csv = SageMakerPredictor(ENDPOINT, "us-east-1", endpoint_url=moto.url)
            as_json = SageMakerPredictor(ENDPOINT, "us-east-1", "application/json", endpoint_url=moto.url)
            absent = SageMakerPredictor("absent", "us-east-1", endpoint_url=moto.url)
            try:
                return (
                    await csv.predict(np.zeros((3, 50), np.float32)),
                    await as_json.predict(np.ones((2, 50), np.float32)),
                    await csv.ready(),
                    await absent.ready(),
                )
            finally:
                for p in (csv, as_json, absent):
                    await p.close()

        csv_scores, json_scores, ready, absent_ready = run(scenario())
        assert csv_scores.tolist() == [0.125, 0.5, 0.875]
        assert json_scores.tolist() == [0.25, 0.75]
        assert ready is True and absent_ready is False
    finally:
        moto.stop()


# ---- Azure ML -------------------------------------------------------------------------------------------------


def test_azure_ml_endpoint_gives_the_boosters_own_scores(server, booster, leads):
    predictor = AzureMLPredictor(f"{server.url}/score", AZURE_KEY, 10.0, deployment="blue")
    scores = run(predict_once(predictor, leads))
    np.testing.assert_array_equal(scores, own_scores(booster, leads))
    assert server.last_headers["authorization"] == f"Bearer {AZURE_KEY}"
    assert server.last_headers["azureml-model-deployment"] == "blue"


def test_azure_ml_wrong_key_is_503_and_the_key_is_never_logged(server, leads, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_key = "wrong-key-d41d8cd9"
    predictor = AzureMLPredictor(f"{server.url}/score", wrong_key, 10.0)
    with pytest.raises(PredictorUnavailable) as caught:
        run(predict_once(predictor, leads[:2]))
    assert "refused the key" in caught.value.message
    assert wrong_key not in caught.value.message and wrong_key not in repr(predictor)
    assert wrong_key not in caplog.text


def test_azure_ml_readiness_down_and_slow(server, leads):
    async def ready(uri, key):
        predictor = AzureMLPredictor(uri, key, 5.0)
        try:
            return await predictor.ready()
        finally:
            await predictor.close()

    assert run(ready(f"{server.url}/score", AZURE_KEY)) is True
    assert run(ready(f"{server.url}/score", "wrong")) is False
    down_uri = f"http://127.0.0.1:{free_port()}/score"
    assert run(ready(down_uri, AZURE_KEY)) is False
    with pytest.raises(PredictorUnavailable, match="unreachable"):
        run(predict_once(AzureMLPredictor(down_uri, AZURE_KEY, 5.0), leads[:2]))
    server.gate.clear()
    with pytest.raises(PredictorTimeout):
        run(predict_once(AzureMLPredictor(f"{server.url}/score", AZURE_KEY, 0.3), leads[:2]))


# ---- shadow mode ----------------------------------------------------------------------------------------------


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def agreement_counts() -> tuple[float, float]:
    return (
        metric("lead_scoring_shadow_comparisons_total", agreement="same_tier"),
        metric("lead_scoring_shadow_comparisons_total", agreement="different_tier"),
    )


def test_shadow_runs_beside_the_live_path_and_records_agreement_in_metrics_and_the_lake(
    server, small_artifact, leads, tmp_path
):
    card = load_card(small_artifact)
    lake = tmp_path / "lake"
    sink = ScoreSink(SinkConfig(uri=lake.as_uri(), spool_dir=tmp_path / "spool", flush_seconds=0.2))
    sink.start()
    same_before, different_before = agreement_counts()
    diffs_before = metric("lead_scoring_shadow_score_abs_diff_count")
    lead_ids = [f"lead-{i}" for i in range(len(leads))]

    async def scenario():
        live = InProcessBooster(small_artifact)
        shadow = ShadowScorer(
            AzureMLPredictor(f"{server.url}/score", AZURE_KEY, 10.0), 1.0, card.tier_map, recorder=sink
        )
        server.gate.clear()  # the legacy endpoint holds the shadow call
        scores = await live.predict(leads)
        tiers = card.tier_map.tiers(card.tier_map.buckets(scores))
        started = shadow.maybe_submit(
            "req-shadow-1",
            leads,
            scores,
            tiers,
            lead_ids=lead_ids,
            api_key_name="crm-prod",
            protocol="rest",
            request_form="v1_instances",
        )
        # maybe_submit has returned while the legacy call is still parked inside the server: off the response path.
        await asyncio.to_thread(wait_for, lambda: server.held == 1)
        assert started and shadow.in_flight == 1 and agreement_counts() == (same_before, different_before)
        np.testing.assert_array_equal(scores, await live.predict(leads))  # the live answer is untouched
        server.gate.set()
        await shadow.close()
        return scores

    live_scores = run(scenario())
    same_after, different_after = agreement_counts()
    # Same booster on both sides: every lead agrees, and every difference is zero.
    assert (same_after - same_before, different_after - different_before) == (len(leads), 0)
    assert metric("lead_scoring_shadow_score_abs_diff_count") - diffs_before == len(leads)
    sink.close()
    table = ds.dataset(lake, format="parquet", partitioning="hive").to_table()
    shadow_rows = table.filter(ds.field("model") == "lead-scoring-shadow").sort_by("row")
    assert shadow_rows.num_rows == len(leads)
    assert set(shadow_rows.column("request_id").to_pylist()) == {"req-shadow-1"}
    assert shadow_rows.column("lead_id").to_pylist() == lead_ids
    assert set(shadow_rows.column("model_version").to_pylist()) == {f"azureml:{server.url}/score"}
    np.testing.assert_array_equal(shadow_rows.column("score").to_numpy(), live_scores)


@pytest.mark.parametrize("failure", ["down", "slow", "error"])
def test_a_failing_legacy_endpoint_never_touches_the_live_path(
    server, small_artifact, leads, failure, aws_env
):
    card = load_card(small_artifact)
    url = f"http://127.0.0.1:{free_port()}" if failure == "down" else server.url
    if failure == "slow":
        server.gate.clear()
    if failure == "error":
        server.fail_status = 500
    reason = {"down": "unavailable", "slow": "timeout", "error": "unavailable"}[failure]
    failures_before = metric("lead_scoring_shadow_failures_total", reason=reason)
    agreement_before = agreement_counts()

    async def scenario():
        live = InProcessBooster(small_artifact)
        legacy = SageMakerPredictor(ENDPOINT, "us-east-1", timeout_seconds=0.3, endpoint_url=url)
        shadow = ShadowScorer(legacy, 1.0, card.tier_map)
        expected = await live.predict(leads)
        tiers = card.tier_map.tiers(card.tier_map.buckets(expected))
        assert shadow.maybe_submit("req-shadow-2", leads, expected, tiers) is True
        answered = await live.predict(leads)  # the live path keeps serving while the shadow call fails
        await shadow.close()
        return expected, answered

    expected, answered = run(scenario())
    np.testing.assert_array_equal(answered, expected)
    assert metric("lead_scoring_shadow_failures_total", reason=reason) - failures_before == 1
    assert agreement_counts() == agreement_before


# ---- deadlines, answer bounds, work off the event loop --------------------------------------------------------


def backend(kind: str, url: str, timeout: float):
    if kind == "sagemaker":
        return SageMakerPredictor(ENDPOINT, "us-east-1", timeout_seconds=timeout, endpoint_url=url)
    return AzureMLPredictor(f"{url}/score", AZURE_KEY, timeout)


BACKENDS = ["sagemaker", "azureml"]
GUARD_SECONDS = 15.0  # far past every deadline below: only a call without one runs into it


@pytest.mark.parametrize("kind", BACKENDS)
def test_an_endpoint_that_trickles_its_answer_meets_the_total_deadline(server, leads, aws_env, kind):
    server.trickle_every = 0.1  # every read sees a byte: a per-read timeout never fires

    async def scenario():
        predictor = backend(kind, server.url, 0.5)
        try:
            await asyncio.wait_for(predictor.predict(leads[:2]), GUARD_SECONDS)
        finally:
            await predictor.close()

    with pytest.raises(PredictorTimeout, match=r"did not answer within 0.5 s \(--legacy_timeout_seconds\)"):
        run(scenario())
    assert server.received == 1  # one attempt


def test_shadow_slots_held_by_a_trickling_endpoint_are_freed_at_the_deadline(server, small_artifact, leads):
    card = load_card(small_artifact)
    server.trickle_every = 0.1
    timeouts_before = metric("lead_scoring_shadow_failures_total", reason="timeout")
    full_before = metric("lead_scoring_shadow_failures_total", reason="in_flight_full")
    live = np.full(4, 0.5, np.float32)
    tiers = card.tier_map.tiers(card.tier_map.buckets(live))

    async def scenario():
        shadow = ShadowScorer(
            AzureMLPredictor(f"{server.url}/score", AZURE_KEY, 0.3), 1.0, card.tier_map, max_in_flight=2
        )
        for round_ in range(2):  # the second round finds the slots the first one held free again
            assert all(shadow.maybe_submit(f"req-{round_}-{i}", leads[:4], live, tiers) for i in range(2))
            await asyncio.wait_for(asyncio.gather(*shadow._tasks), GUARD_SECONDS)
            assert shadow.in_flight == 0
        await shadow.close()

    run(scenario())
    assert metric("lead_scoring_shadow_failures_total", reason="timeout") - timeouts_before == 4
    assert metric("lead_scoring_shadow_failures_total", reason="in_flight_full") == full_before


def huge_answer(scores: np.ndarray) -> bytes:
    return b"[" + b"0.5," * 3_000_000 + b"0.5]"  # 12 MB for any number of leads


@pytest.mark.parametrize("kind", BACKENDS)
def test_an_answer_larger_than_its_bound_is_refused_unread_and_counted_in_shadow(
    server, small_artifact, leads, aws_env, kind
):
    server.answer_body = huge_answer
    with pytest.raises(PredictorUnavailable, match=r"answered more than 69632 bytes for 4 leads"):
        run(predict_once(backend(kind, server.url, 10.0), leads[:4]))

    card = load_card(small_artifact)
    live = np.full(4, 0.5, np.float32)
    before = metric("lead_scoring_shadow_failures_total", reason="unavailable")

    async def shadowed():
        shadow = ShadowScorer(backend(kind, server.url, 10.0), 1.0, card.tier_map)
        assert shadow.maybe_submit(
            "req-huge", leads[:4], live, card.tier_map.tiers(card.tier_map.buckets(live))
        )
        await shadow.close(GUARD_SECONDS)

    run(shadowed())
    assert metric("lead_scoring_shadow_failures_total", reason="unavailable") - before == 1


@pytest.mark.parametrize(("kind", "encoder"), [("sagemaker", "encode_csv"), ("azureml", "encode_azureml")])
def test_shadow_calls_encode_and_decode_off_the_event_loop(
    server, booster, small_artifact, leads, aws_env, monkeypatch, kind, encoder
):
    """Encoding 1000 leads or parsing their answer takes milliseconds: on the serving loop, that is time every other
    request and every health probe waits."""
    from transformer.predictors import legacy

    threads: dict[str, list[int]] = {"encode": [], "decode": []}

    def recording(step, function):
        def wrapper(*args, **kwargs):
            threads[step].append(threading.get_ident())
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(legacy, encoder, recording("encode", getattr(legacy, encoder)))
    monkeypatch.setattr(legacy, "decode_scores", recording("decode", legacy.decode_scores))
    card = load_card(small_artifact)
    live = own_scores(booster, leads)
    same_before, _ = agreement_counts()

    async def scenario():
        shadow = ShadowScorer(backend(kind, server.url, 10.0), 1.0, card.tier_map)
        assert shadow.maybe_submit(
            "req-off-loop", leads, live, card.tier_map.tiers(card.tier_map.buckets(live))
        )
        await shadow.close(GUARD_SECONDS)
        return threading.get_ident()

    loop_thread = run(scenario())
    assert agreement_counts()[0] - same_before == len(leads)  # the comparison did happen
    assert len(threads["encode"]) == 1 and len(threads["decode"]) == 1
    assert loop_thread not in threads["encode"] + threads["decode"]


def test_out_of_range_legacy_scores_are_refused_naming_the_endpoint(server, leads, aws_env):
    server.answer_body = lambda scores: ",".join(str(s + 5) for s in scores.tolist()).encode()
    with pytest.raises(PredictorUnavailable) as caught:
        run(predict_once(backend("sagemaker", server.url, 10.0), leads[:3]))
    assert f"sagemaker:us-east-1/{ENDPOINT}" in caught.value.message
    assert "outside [0, 1]" in caught.value.message and "binary:logitraw" in caught.value.message
