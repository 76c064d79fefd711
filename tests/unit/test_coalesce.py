"""Request coalescing: concurrent requests share one predictor call and each gets exactly its own scores."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from transformer.coalesce import Coalescer
from transformer.errors import PredictorUnavailable


class RecordingPredictor:
    mode = "fake"

    def __init__(self, fail: bool = False):
        self.calls: list[int] = []
        self.headers: list[dict | None] = []
        self.fail = fail

    async def predict(self, matrix, headers=None):
        self.calls.append(matrix.shape[0])
        self.headers.append(headers)
        await asyncio.sleep(0)
        if self.fail:
            raise PredictorUnavailable("predictor down")
        return matrix[:, 0].astype(np.float32) * 2  # a score each caller can recognise as its own


def test_concurrent_requests_are_scored_in_one_call_and_split_back():
    inner = RecordingPredictor()
    coalescer = Coalescer(inner, max_rows=1000)
    requests = [np.full((n, 50), float(i), np.float32) for i, n in enumerate([1, 3, 1, 5, 2], start=1)]

    async def run():
        return await asyncio.gather(*(coalescer.predict(m) for m in requests))

    results = asyncio.run(run())
    assert inner.calls == [12]
    for i, (matrix, scores) in enumerate(zip(requests, results, strict=True), start=1):
        assert scores.shape == (matrix.shape[0],) and np.all(scores == 2 * i)


def test_a_lone_request_goes_straight_through_and_big_ones_are_not_merged():
    inner = RecordingPredictor()
    coalescer = Coalescer(inner, max_rows=4)

    async def run():
        alone = await coalescer.predict(np.ones((1, 50), np.float32))
        both = await asyncio.gather(
            coalescer.predict(np.ones((4, 50), np.float32)),
            coalescer.predict(np.ones((3, 50), np.float32)),
            coalescer.predict(np.ones((2, 50), np.float32)),
        )
        return alone, both

    alone, both = asyncio.run(run())
    assert inner.calls[0] == 1 and len(alone) == 1
    assert inner.calls[1:] == [4, 3, 2]  # 4 rows go alone; 3 + 2 would exceed max_rows=4
    assert [len(s) for s in both] == [4, 3, 2]


def test_a_failure_reaches_every_waiting_request():
    coalescer = Coalescer(RecordingPredictor(fail=True))

    async def run():
        return await asyncio.gather(
            *(coalescer.predict(np.ones((1, 50), np.float32)) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(run())
    assert all(isinstance(r, PredictorUnavailable) for r in results)


class OneTooMany(RecordingPredictor):
    async def predict(self, matrix, headers=None):
        scores = await super().predict(matrix, headers)
        return np.append(scores, np.float32(0.5))


def test_a_call_answered_with_the_wrong_number_of_scores_fails_every_request_in_it():
    """Split back by position, one score too many would shift every later caller's scores onto the wrong leads:
    each request of the call gets PredictorUnavailable (a 503) instead."""
    coalescer = Coalescer(OneTooMany())
    requests = [np.full((n, 50), float(i), np.float32) for i, n in enumerate([2, 1, 3], start=1)]

    async def run():
        return await asyncio.gather(*(coalescer.predict(m) for m in requests), return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, PredictorUnavailable) for r in results), results
    assert "returned 7 scores for 6 leads" in str(results[0])


def test_requests_in_later_turns_form_new_batches():
    inner = RecordingPredictor()
    coalescer = Coalescer(inner)

    async def run():
        first = asyncio.ensure_future(coalescer.predict(np.ones((2, 50), np.float32)))
        await asyncio.sleep(0.01)
        second = await coalescer.predict(np.ones((3, 50), np.float32))
        return await first, second

    first, second = asyncio.run(run())
    assert inner.calls == [2, 3] and len(first) == 2 and len(second) == 3


@pytest.mark.parametrize("ready", [True, False])
def test_mode_and_readiness_pass_through(ready):
    inner = RecordingPredictor()
    inner.ready = lambda: asyncio.sleep(0, result=ready)
    coalescer = Coalescer(inner)
    assert coalescer.mode == "fake"
    assert asyncio.run(coalescer.ready()) is ready


def test_a_call_carries_a_request_id_only_when_it_scores_that_request_alone():
    """No one request's x-request-id describes a batch, and one client's header must not ride on (and so decide
    the fate of) the call that scores other clients' leads."""
    inner = RecordingPredictor()
    coalescer = Coalescer(inner, max_rows=4)

    async def run():
        await coalescer.predict(np.ones((1, 50), np.float32), {"x-request-id": "alone"})
        await asyncio.gather(
            coalescer.predict(np.ones((1, 50), np.float32), {"x-request-id": "first"}),
            coalescer.predict(np.ones((2, 50), np.float32), {"x-request-id": "second"}),
        )
        await coalescer.predict(
            np.ones((4, 50), np.float32), {"x-request-id": "big"}
        )  # max_rows: goes direct

    asyncio.run(run())
    assert inner.calls == [1, 3, 4]
    assert inner.headers == [{"x-request-id": "alone"}, None, {"x-request-id": "big"}]
