"""Request coalescing: leads from requests that arrive together are scored in one predictor call.

Every call into xgboost 2.1 costs ~0.2 ms of CPU before the first tree (mostly `std::regex` compiled to parse the
device string, on every call: transformer/native_xgboost.py), and every hop to the predictor costs a round trip and
the predictor's per-request overhead; one more lead in the same call costs ~1.5 µs. So concurrent single-lead
requests are stacked into one matrix (`make bench` reports the leads per call it sees under load).

No timer is involved, so no latency is added: the first request of an event-loop turn schedules the flush with
`call_soon`, which runs after every request task that was ready in the same turn has queued its leads. Under low load
a batch is one request; under high load batches grow by themselves. Several batches may be in flight at once.

The predictor sees a request's x-request-id only when its call scores that request alone (below).

Every waiting request gets an answer or an error, whatever happens in the flush — including a CancelledError from
grpc.aio when the hop's channel closes at shutdown, which is not an Exception.
"""

from __future__ import annotations

import asyncio

import numpy as np

from transformer.errors import PredictorUnavailable
from transformer.metrics import COALESCED_ROWS


class Coalescer:
    def __init__(self, predictor, max_rows: int = 1000):
        self.inner = predictor
        self.mode = predictor.mode
        self.max_rows = max_rows
        self._pending: list[tuple[np.ndarray, asyncio.Future, dict | None]] = []
        self._rows = 0
        self._scheduled = False
        self._in_flight: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        if matrix.shape[0] >= self.max_rows:
            return await self.inner.predict(matrix, headers)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._pending and (
            self._rows + matrix.shape[0] > self.max_rows or self._pending[0][0].shape[1:] != matrix.shape[1:]
        ):
            self._start_flush()  # a batch never exceeds max_rows, and stacks matrices of one width only
        self._pending.append((matrix, future, headers))
        self._rows += matrix.shape[0]
        if self._rows >= self.max_rows:
            self._start_flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending, self._rows = self._pending, [], 0
        task = asyncio.ensure_future(self._flush(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _flush(self, batch: list[tuple[np.ndarray, asyncio.Future, dict | None]]) -> None:
        try:
            matrices = [matrix for matrix, _, _ in batch]
            stacked = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            COALESCED_ROWS.observe(stacked.shape[0])
            # A call for one request carries its headers (x-request-id); a call for several carries none, since
            # no one request's id describes the batch, and one client's header must never decide whether the
            # call that scores other clients' leads succeeds.
            scores = await self.inner.predict(stacked, batch[0][2] if len(batch) == 1 else None)
            if len(scores) != stacked.shape[0]:
                raise PredictorUnavailable(
                    f"predictor returned {len(scores)} scores for {stacked.shape[0]} leads"
                )
            start = 0
            for matrix, future, _ in batch:
                end = start + matrix.shape[0]
                if not future.done():
                    future.set_result(scores[start:end])
                start = end
        except asyncio.CancelledError:
            # The hop's call was cancelled (its channel closed) or this task was: the requests were not.
            self._fail(
                batch,
                PredictorUnavailable(
                    "the predictor call was cancelled (the transformer is shutting "
                    "down or the predictor connection closed); retry"
                ),
            )
            raise
        except (
            BaseException
        ) as exc:  # every waiting request gets the same failure (503/504 …), then it propagates
            self._fail(batch, exc if isinstance(exc, Exception) else PredictorUnavailable(repr(exc)))
            if not isinstance(exc, Exception):
                raise

    @staticmethod
    def _fail(batch: list[tuple[np.ndarray, asyncio.Future, dict | None]], error: BaseException) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def close(self) -> None:
        await self.inner.close()
