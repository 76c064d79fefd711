"""Legacy endpoints without a network: wire encoding, answer decoding, error mapping, shadow sampling and bounds."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from botocore import exceptions as bx
from prometheus_client import REGISTRY

from contract.features import FEATURE_NAMES
from contract.tiers import TierMap
from tests.legacy_servers import parse_container_csv
from transformer.errors import PredictorTimeout, PredictorUnavailable
from transformer.extras import shadow as shadow_module
from transformer.extras.shadow import ShadowScorer, sampled
from transformer.predictors.legacy import (
    azureml_error,
    decode_scores,
    encode_azureml,
    encode_csv,
    encode_sagemaker_json,
    sagemaker_error,
)


def matrix_with_gaps(n: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = (rng.random((n, 50)) * 1000).astype(np.float32)
    m[0, 0] = np.nan
    m[1, 49] = np.nan
    m[2, 7] = 3.0
    return m


def test_csv_has_one_lead_a_line_and_missing_values_as_empty_fields():
    m = matrix_with_gaps()
    lines = encode_csv(m).decode().splitlines()
    assert len(lines) == 3 and all(line.count(",") == 49 for line in lines)
    assert lines[0].startswith(",") and lines[1].endswith(",")
    assert float(lines[2].split(",")[7]) == 3.0
    # Read the way the SageMaker XGBoost container reads it: the very same float32 inputs come back.
    np.testing.assert_array_equal(parse_container_csv(encode_csv(m).decode()).astype(np.float32), m)


EDGES = np.array(
    [[1e-8, 123456789.0, 3.0, -0.0, np.nan, 1e30, -1.5e-38, 0.1, 16777217.0, 2.5] * 5], np.float32
)


@pytest.mark.parametrize("encode", [encode_csv, encode_sagemaker_json, encode_azureml])
def test_every_wire_form_gives_the_legacy_model_the_very_same_float32_inputs(encode):
    """Shortest round-trip forms (0.1, 1e-8, 123456790.0): parsed as float64 by the container, cast to float32 by
    xgboost, each is the float32 the transformer validated; NaN is the missing value."""
    m = np.vstack([EDGES, matrix_with_gaps()])
    body = encode(m)
    if encode is encode_csv:
        sent = parse_container_csv(body.decode())
    else:
        document = json.loads(body)
        rows = document["instances"] if "instances" in document else document["input_data"]["data"]
        sent = np.asarray([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
    np.testing.assert_array_equal(sent.astype(np.float32), m)


def test_json_bodies_send_null_for_missing_and_name_the_columns():
    m = matrix_with_gaps()
    instances = json.loads(encode_sagemaker_json(m))["instances"]
    assert instances[0][0] is None and instances[1][49] is None and len(instances[2]) == 50
    body = json.loads(encode_azureml(m))["input_data"]
    assert body["columns"] == list(FEATURE_NAMES)
    assert body["index"] == [0, 1, 2]
    assert body["data"][0][0] is None
    np.testing.assert_array_equal(np.asarray(body["data"][2], dtype=np.float32), m[2])


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"0.25,0.5,0.75", "text/csv"),  # real-time container
        (b"0.25\n0.5\n0.75\n", "text/csv; charset=utf-8"),  # batch container
        (b'{"predictions": [{"score": 0.25}, {"score": 0.5}, {"score": 0.75}]}', "application/json"),
        (
            b'{"predictions": [{"probability": 0.25}, {"probability": 0.5}, {"probability": 0.75}]}',
            "application/json",
        ),
        (b'{"probability": 0.25}\n{"probability": 0.5}\n{"probability": 0.75}\n', "application/jsonlines"),
        (b"[0.25, 0.5, 0.75]", "application/json"),  # Azure ML MLflow
        (
            b'"{\\"predictions\\": [0.25, 0.5, 0.75]}"',
            "application/json",
        ),  # a score script's json.dumps, twice
        (b"[0.25, 0.5, 0.75]", None),
    ],
)
def test_every_answer_format_decodes_to_the_scores(body, content_type):
    scores = decode_scores(body, content_type, 3, "test")
    assert scores.dtype == np.float32
    assert scores.tolist() == [0.25, 0.5, 0.75]


@pytest.mark.parametrize(
    "body,content_type,needle",
    [
        (b"0.25,0.5", "text/csv", "2 scores for 3 leads"),
        (b"<html>gateway</html>", "text/html", "not scores"),
        (b'{"result": [1, 2, 3]}', "application/json", "predictions"),
        (b"nan,0.5,0.7", "text/csv", "non-finite"),
        (
            b"[" * 100_000 + b"]" * 100_000,
            "application/json",
            "not scores",
        ),  # nested past Python's recursion limit
    ],
)
def test_a_wrong_answer_is_an_unavailable_backend_that_says_why(body, content_type, needle):
    with pytest.raises(PredictorUnavailable, match=needle):
        decode_scores(body, content_type, 3, "test")


@pytest.mark.parametrize("body", [b"5.19,0.5,0.7", b"-0.01,0.5,0.7", b"0.2,1.0001,0.7", b"[-2.3, 0.1, 4.7]"])
def test_scores_outside_0_1_are_refused_with_a_hint_at_margins(body):
    # A margin (objective binary:logitraw) would otherwise be answered as score 5.19, tier A.
    with pytest.raises(PredictorUnavailable) as caught:
        decode_scores(body, "text/csv", 3, "sagemaker:eu-west-1/legacy")
    message = caught.value.message
    assert "sagemaker:eu-west-1/legacy" in message and "outside [0, 1]" in message
    assert "binary:logitraw" in message


def test_scores_at_0_and_1_are_probabilities():
    assert decode_scores(b"0,1,0.5", "text/csv", 3, "test").tolist() == [0.0, 1.0, 0.5]


def client_error(code: str, message: str = "m", **extra) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message}, **extra}, "InvokeEndpoint")


@pytest.mark.parametrize(
    "exc,kind,needle",
    [
        (bx.ReadTimeoutError(endpoint_url="https://x"), PredictorTimeout, "within 2 s"),
        (bx.ConnectTimeoutError(endpoint_url="https://x"), PredictorTimeout, "within 2 s"),
        (bx.EndpointConnectionError(endpoint_url="https://x"), PredictorUnavailable, "unreachable"),
        (bx.NoCredentialsError(), PredictorUnavailable, "no AWS credentials"),
        (client_error("AccessDeniedException"), PredictorUnavailable, "not allowed sagemaker:InvokeEndpoint"),
        (
            client_error("ValidationError", "Endpoint e of account 1 not found."),
            PredictorUnavailable,
            "no such endpoint",
        ),
        (
            client_error("ModelError", OriginalStatusCode=500),
            PredictorUnavailable,
            "/aws/sagemaker/Endpoints/e",
        ),
        (client_error("ThrottlingException"), PredictorUnavailable, "busy"),
    ],
)
def test_botocore_failures_map_to_503_or_504_with_a_hint(exc, kind, needle):
    error = sagemaker_error(exc, "e", "eu-west-1", 2.0)
    assert type(error) is kind
    assert needle in error.message and "'e' (eu-west-1)" in error.message
    assert (error.http_status, kind) in {(503, PredictorUnavailable), (504, PredictorTimeout)}


def test_a_non_botocore_exception_is_not_swallowed():
    assert sagemaker_error(KeyError("x"), "e", "r", 1.0) is None


@pytest.mark.parametrize(
    "status,kind,needle",
    [
        (401, PredictorUnavailable, "refused the key"),
        (403, PredictorUnavailable, "refused the key"),
        (404, PredictorUnavailable, "/score"),
        (408, PredictorTimeout, "request_timeout_ms"),
        (429, PredictorUnavailable, "throttling"),
        (424, PredictorUnavailable, "model failed"),
        (502, PredictorUnavailable, "HTTP 502"),
    ],
)
def test_azure_ml_statuses_map_to_503_or_504(status, kind, needle):
    error = azureml_error(status, "detail", "Azure ML endpoint u", 2.0)
    assert type(error) is kind and needle in error.message


# ---- shadow ---------------------------------------------------------------------------------------------------


def test_sampling_is_deterministic_in_the_request_id_and_honours_the_fraction():
    ids = [f"req-{i}" for i in range(20_000)]
    first = [sampled(i, 0.1) for i in ids]
    assert first == [sampled(i, 0.1) for i in ids]
    assert 0.09 < sum(first) / len(ids) < 0.11
    assert not any(sampled(i, 0.0) for i in ids[:1000]) and all(sampled(i, 1.0) for i in ids[:1000])
    # A larger fraction keeps every request a smaller one shadowed: raising it never drops a comparison series.
    assert all(sampled(i, 0.3) for i, s in zip(ids, first, strict=True) if s)


class GatedBackend:
    """A Predictor that holds every call until released: in-process, to count tasks exactly."""

    mode = "gated"

    def __init__(self, scores_for, fail: Exception | None = None):
        self.scores_for, self.fail = scores_for, fail
        self.release = asyncio.Event()
        self.calls = 0

    async def predict(self, matrix, headers=None):
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise self.fail
        return self.scores_for(matrix)

    async def ready(self):
        return True

    async def close(self):
        return None


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


TIERS = TierMap([0.2, 0.4, 0.6, 0.8])


def test_in_flight_is_bounded_and_overflow_is_dropped_and_counted():
    live = np.array([0.1, 0.5, 0.9], np.float32)
    live_tiers = TIERS.tiers(TIERS.buckets(live))
    backend = GatedBackend(lambda m: np.array([0.1, 0.5, 0.7], np.float32))  # last lead: A live, B legacy
    before = {
        k: metric("lead_scoring_shadow_comparisons_total", agreement=k)
        for k in ("same_tier", "different_tier")
    }
    dropped_before = metric("lead_scoring_shadow_failures_total", reason="in_flight_full")

    async def scenario():
        shadow = ShadowScorer(backend, 1.0, TIERS, max_in_flight=2)
        started = [
            shadow.maybe_submit(f"r{i}", np.zeros((3, 50), np.float32), live, live_tiers) for i in range(4)
        ]
        await asyncio.sleep(0)  # let the tasks reach the backend
        assert started == [True, True, False, False]
        assert shadow.in_flight == 2 and backend.calls == 2
        backend.release.set()
        await shadow.drain()
        assert shadow.in_flight == 0

    asyncio.run(scenario())
    assert metric("lead_scoring_shadow_failures_total", reason="in_flight_full") - dropped_before == 2
    assert metric("lead_scoring_shadow_comparisons_total", agreement="same_tier") - before["same_tier"] == 4
    assert (
        metric("lead_scoring_shadow_comparisons_total", agreement="different_tier") - before["different_tier"]
        == 2
    )


def test_a_failing_backend_is_counted_and_never_raises_into_the_caller():
    live = np.array([0.5], np.float32)
    backend = GatedBackend(lambda m: live, fail=PredictorTimeout("slow"))
    before = metric("lead_scoring_shadow_failures_total", reason="timeout")

    async def scenario():
        shadow = ShadowScorer(backend, 1.0, TIERS)
        assert shadow.maybe_submit("r", np.zeros((1, 50), np.float32), live, TIERS.tiers(TIERS.buckets(live)))
        backend.release.set()
        await shadow.drain()

    asyncio.run(scenario())
    assert metric("lead_scoring_shadow_failures_total", reason="timeout") - before == 1


def test_without_an_event_loop_submit_counts_an_error_instead_of_raising():
    shadow = ShadowScorer(GatedBackend(lambda m: m[:, 0]), 1.0, TIERS)
    before = metric("lead_scoring_shadow_failures_total", reason="error")
    assert (
        shadow.maybe_submit("r", np.zeros((1, 50), np.float32), np.zeros(1, np.float32), np.array(["E"]))
        is False
    )
    assert metric("lead_scoring_shadow_failures_total", reason="error") - before == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ShadowScorer(GatedBackend(lambda m: m), 1.5, TIERS)
    with pytest.raises(ValueError):
        ShadowScorer(GatedBackend(lambda m: m), 0.5, TIERS, max_in_flight=0)


def test_score_differences_are_observed_in_one_pass(monkeypatch):
    """One histogram pass per shadowed request, not one observe() per lead on the serving event loop."""
    observed_one_by_one = []
    monkeypatch.setattr(shadow_module.SCORE_DIFF, "observe", observed_one_by_one.append)
    live = np.array([0.1, 0.5, 0.9, 0.3], np.float32)
    legacy = np.array([0.1, 0.52, 0.5, 0.31], np.float32)  # |diffs| 0, 0.02, 0.4, 0.01
    bucket = "lead_scoring_shadow_score_abs_diff_bucket"
    before = {le: metric(bucket, le=le) for le in ("0.001", "0.025", "0.5", "+Inf")}
    count_before = metric("lead_scoring_shadow_score_abs_diff_count")

    async def scenario():
        backend = GatedBackend(lambda m: legacy)
        backend.release.set()
        shadow = ShadowScorer(backend, 1.0, TIERS)
        assert shadow.maybe_submit(
            "r-bulk", np.zeros((4, 50), np.float32), live, TIERS.tiers(TIERS.buckets(live))
        )
        await shadow.drain()

    asyncio.run(scenario())
    assert observed_one_by_one == []
    assert metric("lead_scoring_shadow_score_abs_diff_count") - count_before == 4
    assert {le: metric(bucket, le=le) - before[le] for le in before} == {
        "0.001": 1,
        "0.025": 3,
        "0.5": 4,
        "+Inf": 4,
    }
