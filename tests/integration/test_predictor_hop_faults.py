"""The gRPC hop and the coalescer against a real predictor process (predictor/server.py, the runtime's stand-in)
that is frozen, killed and restarted (issue 19): no coalesced request waits forever, and the hop reconnects within
about a second of the predictor's return, however long it was away."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from contract.features import FEATURES
from hack.stack import start_predictor
from predictor.synthetic import sample_features
from transformer.coalesce import Coalescer
from transformer.errors import PredictorUnavailable
from transformer.predictors.hop import GrpcHop

LEAD = np.where(
    np.isnan(sample_features(1, seed=3)), [f.minimum for f in FEATURES], sample_features(1, seed=3)
).astype(np.float32)
NO_ANSWER = 10.0  # seconds: a waiter still unresolved by then would wait forever


@pytest.fixture
def predictor(small_artifact, tmp_path):
    server = start_predictor(small_artifact, tmp_path / "logs")
    server.wait_ready()
    yield server
    with_signal(server, signal.SIGCONT)
    server.stop(signal.SIGKILL)


def with_signal(server, sig: int) -> None:
    if server.process.poll() is None:
        os.kill(server.process.pid, sig)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_coalesced_requests_get_an_error_when_the_hop_is_closed_mid_call(predictor):
    async def scenario():
        hop = GrpcHop(predictor.grpc_target, "lead-scoring", timeout_seconds=30, retries=0)
        coalescer = Coalescer(hop)
        assert len(await coalescer.predict(LEAD)) == 1  # connected
        with_signal(predictor, signal.SIGSTOP)  # frozen: the next call stays in flight
        try:
            waiters = [asyncio.ensure_future(coalescer.predict(LEAD)) for _ in range(3)]
            await asyncio.sleep(0.5)
            # Shutdown closes the channel; grpc.aio cancels the call in flight (CancelledError, not an Exception).
            await hop.close()
            return await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), NO_ANSWER)
        finally:
            with_signal(predictor, signal.SIGCONT)

    results = asyncio.run(scenario())
    assert len(results) == 3 and all(isinstance(r, PredictorUnavailable) for r in results), results
    assert "cancelled" in str(results[0])


def test_requests_of_different_widths_arriving_together_each_get_their_own_answer(predictor):
    async def scenario():
        hop = GrpcHop(predictor.grpc_target, "lead-scoring", timeout_seconds=10, retries=0)
        coalescer = Coalescer(hop)
        try:
            calls = [coalescer.predict(LEAD), coalescer.predict(LEAD[:, :49]), coalescer.predict(LEAD)]
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), NO_ANSWER)
        finally:
            await hop.close()

    good, narrow, also_good = asyncio.run(scenario())  # before the fix: all three wait forever
    assert isinstance(good, np.ndarray) and good.shape == (1,)
    assert isinstance(also_good, np.ndarray) and also_good[0] == good[0]
    # The narrow matrix went in a predictor call of its own (xgboost scores it, missing the last feature).
    assert isinstance(narrow, np.ndarray) and narrow.shape == (1,)


OUTAGE_SECONDS = 20.0  # long enough for gRPC's default backoff to grow past 10 s


def test_the_hop_reconnects_within_about_a_second_after_a_long_predictor_outage(
    predictor, small_artifact, tmp_path
):
    async def scenario():
        hop = GrpcHop(predictor.grpc_target, "lead-scoring", timeout_seconds=2, retries=0)
        try:
            assert len(await hop.predict(LEAD)) == 1
            predictor.stop(signal.SIGKILL)
            outage_ends = time.monotonic() + OUTAGE_SECONDS
            while time.monotonic() < outage_ends:  # traffic goes on during the outage, and fails fast
                with pytest.raises(PredictorUnavailable):
                    await hop.predict(LEAD)
                await asyncio.sleep(0.25)
            back = start_predictor(
                small_artifact,
                tmp_path / "logs-2",
                http_port=predictor.http_port,
                grpc_port=predictor.grpc_port,
            )
            predictor.process = back.process  # the fixture stops this one
            while not port_open(back.grpc_port):
                assert back.process.poll() is None, back.log_tail()
                await asyncio.sleep(0.02)
            returned = time.monotonic()
            while True:
                try:
                    await hop.predict(LEAD)
                    return time.monotonic() - returned
                except PredictorUnavailable:
                    assert time.monotonic() - returned < 30, "the hop never reconnected"
                    await asyncio.sleep(0.05)
        finally:
            await hop.close()

    recovered = asyncio.run(scenario())
    # Backoff capped at 1 s (+20% jitter) plus the call itself; before the cap: 4-10 s after a 20 s outage.
    assert recovered < 2.0, f"first success {recovered:.1f} s after the predictor was back"


def four_leads_through_a_predictor_serving(booster, folder: Path) -> np.ndarray:
    """The gRPC hop's answer for four leads from a real predictor process serving `booster`."""
    folder.mkdir()
    booster.save_model(folder / "model.ubj")
    server = start_predictor(folder, folder.parent / f"{folder.name}-logs")
    try:
        server.wait_ready()

        async def scenario():
            hop = GrpcHop(server.grpc_target, "lead-scoring", timeout_seconds=10, retries=0)
            try:
                return await hop.predict(np.repeat(LEAD, 4, axis=0))
            finally:
                await hop.close()

        return asyncio.run(scenario())
    finally:
        server.stop()


def test_a_predictor_whose_booster_answers_no_probabilities_is_unavailable_not_tier_a(tmp_path):
    """A predictor serving a booster of another objective (a regression here: outputs far outside [0, 1], some NaN
    through a NaN leaf would be the same) had its outputs tiered as scores: NaN and anything above 1 became tier A."""
    import xgboost as xgb

    rng = np.random.default_rng(5)
    features = rng.random((200, len(FEATURES)), dtype=np.float32)
    booster = xgb.train(
        {"objective": "reg:squarederror", "nthread": 1},
        xgb.DMatrix(features, label=features[:, 0] * 1000 - 500),
        num_boost_round=3,
    )
    with pytest.raises(PredictorUnavailable, match=r"outside \[0, 1\].*binary:logistic"):
        four_leads_through_a_predictor_serving(booster, tmp_path / "regression")


def test_a_predictor_that_answers_several_outputs_a_lead_is_unavailable(tmp_path):
    """A booster with three class probabilities per lead (multi:softprob, all within [0, 1]) answers 3N numbers for
    N leads: without the count check they were scored by position, the first lead's classes becoming three leads'
    scores."""
    import xgboost as xgb

    rng = np.random.default_rng(6)
    features = rng.random((300, len(FEATURES)), dtype=np.float32)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "nthread": 1},
        xgb.DMatrix(features, label=rng.integers(0, 3, 300)),
        num_boost_round=2,
    )
    with pytest.raises(PredictorUnavailable, match="returned 12 scores for 4 leads"):
        four_leads_through_a_predictor_serving(booster, tmp_path / "three-classes")


def test_a_grpc_call_cancelled_by_its_deadline_is_logged_as_cancelled_not_as_an_internal_error(
    predictor, small_artifact, tmp_path
):
    """A call the client gave up on was logged with status INTERNAL (500 on REST), the default of an error, though
    nothing was answered; the counter said `cancelled`. The line now says CANCELLED."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    from hack.stack import start_transformer
    from tests.support.logs import json_log_lines

    key = "cancel-" + os.urandom(8).hex()
    transformer = start_transformer(
        small_artifact, tmp_path / "t", api_keys=f"c:{key}", predictor=predictor.grpc_target
    )
    transformer.wait_ready()
    try:
        with_signal(predictor, signal.SIGSTOP)  # the hop's call stays in flight past the client's deadline
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="input-0", datatype="FP32", shape=[1, len(FEATURES)]
        )
        tensor.contents.fp32_contents.extend(LEAD.ravel().tolist())
        with grpc.insecure_channel(transformer.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as gave_up:
                GRPCInferenceServiceStub(channel).ModelInfer(
                    pb.ModelInferRequest(model_name="lead-scoring", inputs=[tensor]),
                    metadata=(("x-api-key", key), ("x-request-id", "cancelled-by-deadline")),
                    timeout=1.0,
                )
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        def line():
            entries = json_log_lines(transformer.log_path)
            return next((e for e in entries if e.get("request_id") == "cancelled-by-deadline"), None)

        deadline = time.monotonic() + NO_ANSWER
        while line() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        entry = line()
        assert entry is not None, transformer.log_tail()
        assert (entry["msg"], entry["outcome"], entry["status"]) == ("rejected", "cancelled", "CANCELLED")
    finally:
        with_signal(predictor, signal.SIGCONT)
        transformer.stop()
