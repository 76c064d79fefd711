"""Shadow mode: score a sample of live requests on the legacy endpoint too, off the response path, and compare.

The live answer never waits for the shadow call and never sees its failures: `maybe_submit` only starts a task
(or drops the request when too many shadow calls are running) and returns. The task shares the serving event loop,
so the backends keep their heavy work off it: encoding and decoding run in threads, the call has a total deadline
(--legacy_timeout_seconds) and its answer a size bound. Sampling hashes the request id, so a request that is
retried with the same x-request-id is either always or never shadowed.

"Agreement" for one lead: the legacy score and the live score fall in the same tier under the live model card's
thresholds. The score difference is |legacy - live|.

Data lake: each shadowed request is one ordinary ScoredBatch with model name `<model>-shadow` and model version
`<backend target>`, so its rows land in their own partition (`model=lead-scoring-shadow/…`) with the sink's schema
unchanged; they carry the live scoring's `scoring_id`: join them to the live rows on (scoring_id, row). Features are
not repeated (the live rows have them).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from transformer.errors import PredictorTimeout, PredictorUnavailable
from transformer.metrics import observe_many

log = logging.getLogger(__name__)

SCORE_DIFF = Histogram(
    "lead_scoring_shadow_score_abs_diff",
    "Per lead |legacy score - live score| in shadow mode",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0),
)
COMPARISONS = Counter(
    "lead_scoring_shadow_comparisons", "Leads scored by both models, by tier agreement", ["agreement"]
)
FAILURES = Counter(
    "lead_scoring_shadow_failures", "Shadowed requests without a comparison, by reason", ["reason"]
)
IN_FLIGHT = Gauge("lead_scoring_shadow_in_flight", "Shadow calls to the legacy endpoint running now")

AGREEMENTS = ("same_tier", "different_tier")
REASONS = ("timeout", "unavailable", "in_flight_full", "error")
_FAILURE_LOG_INTERVAL = 10.0  # seconds between failure log lines: a dead endpoint must not flood the logs


def sampled(request_id: str, fraction: float) -> bool:
    """Deterministic in the request id: the same id gives the same answer in every replica and every retry."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * (1 << 64)


class ShadowScorer:
    def __init__(
        self,
        backend,
        fraction: float,
        tier_map,
        recorder=None,
        max_in_flight: int = 8,
        *,
        model_name: str = "lead-scoring",
    ):
        if not 0 <= fraction <= 1:
            raise ValueError(f"shadow fraction must be within 0..1, got {fraction}")
        if max_in_flight < 1:
            raise ValueError(f"shadow max in flight must be >= 1, got {max_in_flight}")
        self.backend, self.fraction, self.tier_map = backend, fraction, tier_map
        self.recorder, self.max_in_flight = recorder, max_in_flight
        self.shadow_model_name = f"{model_name}-shadow"
        self.backend_label = getattr(backend, "target", backend.mode)
        self._tasks: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones
        self._last_failure_log = float("-inf")
        for agreement in AGREEMENTS:
            COMPARISONS.labels(agreement)
        for reason in REASONS:
            FAILURES.labels(reason)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def maybe_submit(
        self,
        request_id: str,
        matrix: np.ndarray,
        live_scores: np.ndarray,
        live_tiers,
        *,
        lead_ids: list[str] | None = None,
        api_key_name: str = "",
        protocol: str = "",
        request_form: str = "",
        headers: dict | None = None,
        scoring_id: str | None = None,
    ) -> bool:
        """Start a shadow call for a sampled request; True when one was started. Never raises, never waits.

        Must be called from the serving event loop. The arrays are read later by the task: callers must not
        modify them afterwards (the scoring path never does)."""
        try:
            if not sampled(request_id, self.fraction):
                return False
            if len(self._tasks) >= self.max_in_flight:
                FAILURES.labels("in_flight_full").inc()
                return False
            context = {
                "lead_ids": lead_ids,
                "api_key_name": api_key_name,
                "protocol": protocol,
                "request_form": request_form,
                "headers": headers,
                "scoring_id": scoring_id,
            }
            task = asyncio.get_running_loop().create_task(
                self._compare(request_id, matrix, np.asarray(live_scores), np.asarray(live_tiers), context)
            )
            self._tasks.add(task)
            IN_FLIGHT.set(len(self._tasks))
            task.add_done_callback(self._forget)
            return True
        except Exception:  # whatever goes wrong here, the live request is already answered
            FAILURES.labels("error").inc()
            log.exception("shadow submit failed", extra={"request_id": request_id})
            return False

    def _forget(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        IN_FLIGHT.set(len(self._tasks))

    async def _compare(
        self,
        request_id: str,
        matrix: np.ndarray,
        live_scores: np.ndarray,
        live_tiers: np.ndarray,
        context: dict,
    ) -> None:
        started = time.perf_counter()
        try:
            legacy = await self.backend.predict(
                matrix, {"x-request-id": request_id, **(context["headers"] or {})}
            )
            legacy = np.asarray(legacy, dtype=np.float32).reshape(-1)
            if legacy.shape != live_scores.shape:
                raise PredictorUnavailable(
                    f"legacy returned {legacy.size} scores for {live_scores.size} leads"
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every shadow failure is counted, none may escape
            reason = (
                "timeout"
                if isinstance(exc, PredictorTimeout)
                else "unavailable"
                if isinstance(exc, PredictorUnavailable)
                else "error"
            )
            self._failed(reason, request_id, exc)
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            self._observe(request_id, legacy, live_scores, live_tiers, elapsed_ms, context)
        except Exception as exc:  # noqa: BLE001 - a recording bug must not become an unhandled task error
            self._failed("error", request_id, exc)

    def _observe(
        self,
        request_id: str,
        legacy: np.ndarray,
        live_scores: np.ndarray,
        live_tiers: np.ndarray,
        elapsed_ms: float,
        context: dict,
    ) -> None:
        buckets = self.tier_map.buckets(legacy)
        tiers = self.tier_map.tiers(buckets)
        same = int(np.count_nonzero(tiers == live_tiers))
        COMPARISONS.labels("same_tier").inc(same)
        COMPARISONS.labels("different_tier").inc(legacy.size - same)
        diffs = np.abs(legacy.astype(np.float64) - live_scores.astype(np.float64))
        # One pass: an observe() per lead cost ~1 ms of the serving event loop per 1000 leads.
        observe_many(SCORE_DIFF, diffs)
        log.debug(
            "shadow compared",
            extra={
                "request_id": request_id,
                "leads": int(legacy.size),
                "same_tier": same,
                "max_abs_diff": float(diffs.max(initial=0.0)),
                "legacy_ms": round(elapsed_ms, 3),
            },
        )
        if self.recorder is not None:
            from transformer.sink import ScoredBatch  # the sink is optional; import only when recording

            lead_ids = context["lead_ids"] or [str(i) for i in range(legacy.size)]
            same_scoring = {"scoring_id": context["scoring_id"]} if context.get("scoring_id") else {}
            self.recorder.submit(
                ScoredBatch(
                    **same_scoring,
                    request_id=request_id,
                    scored_at=datetime.now(UTC),
                    model_name=self.shadow_model_name,
                    model_version=self.backend_label,
                    api_key_name=context["api_key_name"],
                    protocol=context["protocol"],
                    request_form=context["request_form"],
                    latency_ms=elapsed_ms,
                    lead_ids=list(lead_ids),
                    scores=legacy,
                    buckets=buckets,
                    tiers=tiers.tolist(),
                    features=None,
                )
            )

    def _failed(self, reason: str, request_id: str, exc: Exception) -> None:
        FAILURES.labels(reason).inc()
        now = time.monotonic()
        if now - self._last_failure_log >= _FAILURE_LOG_INTERVAL:
            self._last_failure_log = now
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.warning(
                "shadow call failed (further failures within %gs are only counted)",
                _FAILURE_LOG_INTERVAL,
                extra={"request_id": request_id, "reason": reason, "error": str(message)[:300]},
            )

    async def drain(self, timeout_seconds: float = 5.0) -> None:
        """Let running shadow calls finish (bounded), cancel the rest. For shutdown."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self, timeout_seconds: float = 5.0) -> None:
        await self.drain(timeout_seconds)
        await self.backend.close()
