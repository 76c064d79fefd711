"""The one scoring path: admit → decode → validate → predict → tier → respond, and record on the side.

Every adapter — the KServe model (REST and gRPC), the fast REST path, anything later — calls `Scorer.score_v1` or
`Scorer.score_v2` and nothing else. Both finish the request themselves (metrics, the log line, the data lake) and
raise only `ScoringError`s; an adapter translates its wire format in and the error's status out. Nothing here
knows KServe, ASGI or gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from contract.model_card import ModelCard
from contract.validation import LeadsRejected, validate_matrix
from transformer import metrics
from transformer.auth import KeyEntry, KeyStore
from transformer.codec import (
    DecodedLeads,
    Tensor,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
    feature_problem_counts,
)
from transformer.errors import Cancelled, InternalError, InvalidRequest, ScoringError
from transformer.ids import new_scoring_id
from transformer.request_ids import new_request_id
from transformer.request_ids import problem as request_id_problem
from transformer.request_ids import refusal as request_id_refusal
from transformer.sink import ScoredBatch

log = logging.getLogger("transformer.requests")


class Predictor(Protocol):
    mode: str

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray: ...
    async def ready(self) -> bool: ...
    async def close(self) -> None: ...


class Recorder(Protocol):
    def submit(self, batch: ScoredBatch) -> bool: ...


class Explainer(Protocol):
    def top(self, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def per_lead_from_top(
        self, matrix: np.ndarray, index: np.ndarray, contribution: np.ndarray, bias: np.ndarray
    ) -> list[list[dict]]: ...
    def tensors_from_top(
        self, index: np.ndarray, contribution: np.ndarray, bias: np.ndarray
    ) -> list[Tensor]: ...


class DriftObserver(Protocol):
    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None: ...


class ShadowObserver(Protocol):
    def maybe_submit(
        self,
        request_id: str,
        matrix: np.ndarray,
        live_scores: np.ndarray,
        live_tiers: np.ndarray,
        *,
        lead_ids: list[str],
        api_key_name: str,
        protocol: str,
        request_form: str,
        scoring_id: str | None = None,
    ) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ScoringLimits:
    """What one request may ask for (flags --max_leads, --max_errors_reported, --reasons_max, --reasons_max_leads)."""

    max_leads: int = 1000
    max_reported: int = 20
    reasons_max: int = 50
    reasons_max_leads: int = 200


@dataclass(frozen=True)
class Extras:
    """The optional collaborators; each may be absent."""

    recorder: Recorder | None = None
    record_features: bool = True
    explainer: Explainer | None = None
    drift: DriftObserver | None = None
    shadow: ShadowObserver | None = None


@dataclass
class ScoringRequest:
    """Everything one request carries through the path; created by the adapter, finished by the Scorer."""

    protocol: str  # rest | grpc: a label for metrics and logs
    request_id: str  # the client's correlation id (x-request-id): clients may reuse it
    # The server's id of this scoring (UUIDv7): answered in the body and `x-scoring-id`, the lake's dedupe key.
    scoring_id: str = field(default_factory=new_scoring_id)
    started: float = field(default_factory=time.perf_counter)
    form: str = "unknown"
    key: KeyEntry | None = None
    leads: DecodedLeads | None = None
    scores: np.ndarray | None = None
    buckets: np.ndarray | None = None
    tiers: np.ndarray | None = None
    reasons_k: int = 0
    reasons: tuple | None = None  # Explainer.top() result when reason codes were asked for
    decoded_at: float = 0.0  # perf_counter marks, for the adapters' stage histograms
    predicted_at: float = 0.0
    # The client's x-request-id broke the rule (transformer/request_ids.py): `request_id` is a server-made one, and
    # the request is refused with this problem once its key has been checked.
    request_id_refused: dict | None = None

    @classmethod
    def from_headers(cls, protocol: str, headers: Mapping | None) -> ScoringRequest:
        """The request with the client's x-request-id when it follows the rule, else a server-made id."""
        sent = (headers or {}).get("x-request-id")
        if not sent:
            return cls(protocol, new_request_id())
        refused = request_id_problem(sent)
        if refused is None:
            return cls(protocol, sent)
        return cls(protocol, new_request_id(), request_id_refused=refused)

    @property
    def forwarded_headers(self) -> dict:
        return {"x-request-id": self.request_id}


class _Ok:
    @staticmethod
    def status_for(protocol: str) -> int | str:
        return "OK" if protocol == "grpc" else 200


_OK = _Ok()


class Scorer:
    def __init__(
        self,
        card: ModelCard,
        predictor: Predictor,
        keys: KeyStore,
        *,
        model_name: str,
        limits: ScoringLimits = ScoringLimits(),
        extras: Extras = Extras(),
    ):
        self.card = card
        self.tier_map = card.tier_map
        self.predictor = predictor
        self.keys = keys
        self.model_name = model_name
        self.limits = limits
        self.extras = extras
        # TreeSHAP on one thread of its own: on asyncio's shared pool, a flood of reason requests took every core
        # from the event loop and held up the requests that asked for none. Reason requests queue here instead.
        self._explaining = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="reasons") if extras.explainer else None
        )
        metrics.MODEL_INFO.labels(model_name, card.version).set(1)
        for tier, share in card.expected_tier_shares.items():
            metrics.EXPECTED_TIER_SHARE.labels(tier).set(share)
        metrics.prime(hop_mode=predictor.mode)

    # --- the entry points ------------------------------------------------------------------------------------

    async def score_v1(self, request: ScoringRequest, api_key: str | None, payload: object) -> dict:
        """A V1 `{"instances": [...]}` body → the V1 answer body. Raises ScoringError, already counted and logged."""
        try:
            self.admit(request, api_key)
            parameters = payload.get("parameters") if isinstance(payload, dict) else None
            self._reasons_requested(
                request, parameters.get("reasons") if isinstance(parameters, dict) else None
            )
            request.form = "v1_instances"
            self._accept(
                request, _decoded(decode_v1, payload, self.limits.max_leads, self.limits.max_reported)
            )
            await self._predict(request)
            explainer = self.extras.explainer
            reasons = (
                explainer.per_lead_from_top(request.leads.matrix, *request.reasons)
                if request.reasons is not None
                else None
            )
            body = encode_v1(
                request.scores,
                request.buckets,
                request.tiers,
                request.leads.lead_ids,
                self.model_name,
                self.card.version,
                reasons,
            )
            body["scoring_id"] = request.scoring_id
        except BaseException as exc:  # noqa: BLE001 - every request ends counted; _fail re-raises cancellation
            raise self._fail(request, exc) from None
        self._finish(request, "ok")
        return body

    async def score_v2(
        self,
        request: ScoringRequest,
        api_key: str | None,
        inputs: Callable[[], list[Tensor]],
        reasons: object = None,
    ) -> list[Tensor]:
        """V2 inputs → output tensors. `inputs` is called after the key is checked: nothing is parsed for a caller
        without one. Raises ScoringError, already counted and logged."""
        try:
            self.admit(request, api_key)
            self._reasons_requested(request, reasons)
            tensors = inputs()
            # Best guess before decoding, so a rejected request is still counted under its form.
            request.form = (
                "v2_tensor" if any(len(t.shape) == 2 and t.shape[-1] > 1 for t in tensors) else "v2_columns"
            )
            self._accept(
                request, _decoded(decode_v2, tensors, self.limits.max_leads, self.limits.max_reported)
            )
            await self._predict(request)
            explainer = self.extras.explainer
            extra = explainer.tensors_from_top(*request.reasons) if request.reasons is not None else None
            outputs = encode_v2(request.scores, request.buckets, request.tiers, request.leads.lead_ids, extra)
        except BaseException as exc:  # noqa: BLE001 - every request ends counted; _fail re-raises cancellation
            raise self._fail(request, exc) from None
        self._finish(request, "ok")
        return outputs

    def admit(self, request: ScoringRequest, api_key: str | None) -> None:
        """Auth + rate limit + the client's request id: the first step of both entry points. A caller without a
        valid key hears 401 whatever its x-request-id; a bad id is charged like any other bad request."""
        request.key = self.keys.authenticate(api_key)
        self.keys.charge(request.key)
        refused = request.request_id_refused
        if refused is not None:
            raise request_id_refusal(refused)

    # --- the steps -------------------------------------------------------------------------------------------

    def _reasons_requested(self, request: ScoringRequest, value: object) -> None:
        if value in (None, False, 0):
            return
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 3.0 is the integer 3 in JSON (and in the OpenAPI document's `integer`)
        limit = self.limits.reasons_max
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise InvalidRequest(
                f"parameter 'reasons' must be a whole number from 1 to {limit}, got {value!r}",
                [
                    {
                        "row": None,
                        "field": "reasons",
                        "rule": "range",
                        "value": str(value)[:20],
                        "message": f"1..{limit}",
                    }
                ],
            )
        if self.extras.explainer is None:
            raise InvalidRequest("reason codes are not available on this deployment")
        request.reasons_k = value

    def _accept(self, request: ScoringRequest, leads: DecodedLeads) -> None:
        request.form = leads.form
        limit = self.limits.reasons_max_leads
        if request.reasons_k and leads.count > limit:
            # TreeSHAP costs ~0.5 ms a lead: one huge request must not hold a worker thread for seconds.
            raise InvalidRequest(
                f"reason codes are limited to {limit} leads per request "
                f"(--reasons_max_leads), got {leads.count}: split the batch or drop 'reasons'",
                [
                    {
                        "row": None,
                        "field": "reasons",
                        "rule": "lead_count",
                        "value": leads.count,
                        "message": f"at most {limit} leads with reasons",
                    }
                ],
            )
        try:
            validate_matrix(leads.matrix, self.limits.max_reported)
        except LeadsRejected as exc:
            counts = exc.counts or Counter((p["field"], p["rule"]) for p in exc.problems)
            for (name, rule), count in counts.items():
                metrics.VALIDATION_FAILURES.labels(name, rule).inc(count)
            raise InvalidRequest(exc.message, exc.problems, exc.total) from None
        leads.matrix = leads.matrix.astype(np.float32)
        request.leads = leads
        request.decoded_at = time.perf_counter()

    async def _predict(self, request: ScoringRequest) -> None:
        started = time.perf_counter()
        reasons = None
        if request.reasons_k:
            # TreeSHAP off the event loop (xgboost releases the GIL), overlapping the hop.
            reasons = asyncio.get_running_loop().run_in_executor(
                self._explaining, self.extras.explainer.top, request.leads.matrix, request.reasons_k
            )
        try:
            scores = await self.predictor.predict(request.leads.matrix, request.forwarded_headers)
        finally:
            metrics.child(metrics.PREDICTOR_HOP, self.predictor.mode).observe(time.perf_counter() - started)
        if reasons is not None:
            request.reasons = await reasons
        request.scores = scores
        request.buckets = self.tier_map.buckets(scores)
        request.tiers = self.tier_map.tiers(request.buckets)
        request.predicted_at = time.perf_counter()
        shadow = self.extras.shadow
        if shadow is not None:  # off the response path: a task, never awaited here
            shadow.maybe_submit(
                request.request_id,
                request.leads.matrix,
                request.scores,
                request.tiers,
                lead_ids=request.leads.lead_ids,
                api_key_name=request.key.name if request.key else "",
                protocol=request.protocol,
                request_form=request.form,
                scoring_id=request.scoring_id,
            )

    # --- the end of every request ----------------------------------------------------------------------------

    def refuse_keyed(self, request: ScoringRequest, error: ScoringError) -> ScoringError:
        """An adapter's refusal of a caller whose key it has checked (`request.key`): charged to the key's rate limit
        like the entry points' own refusals (a 429 once the bucket is empty), so no kind of bad request is free."""
        try:
            self.keys.charge(request.key)
        except ScoringError as limited:
            return self.fail(request, limited)
        return self.fail(request, error)

    def fail(self, request: ScoringRequest, error: ScoringError) -> ScoringError:
        """An adapter's refusal before the entry point (a body it could not parse): counted and logged the same."""
        self._fail(request, error)
        return error

    def _fail(self, request: ScoringRequest, exc: BaseException) -> BaseException:
        if isinstance(exc, ScoringError):
            error = exc
        elif isinstance(exc, Exception):
            log.exception("unexpected error while scoring", extra={"request_id": request.request_id})
            error = InternalError(request.request_id)
        else:  # cancellation, KeyboardInterrupt: counted, then propagated untouched
            error = Cancelled("cancelled before an answer")
            self._finish(request, error.outcome, error)
            return exc
        self._finish(request, error.outcome, error)
        return error

    def _finish(self, request: ScoringRequest, outcome: str, error: ScoringError | None = None) -> None:
        elapsed = time.perf_counter() - request.started
        metrics.child(metrics.REQUESTS, request.protocol, request.form, outcome).inc()
        entry = {
            "request_id": request.request_id,
            "protocol": request.protocol,
            "form": request.form,
            "outcome": outcome,
            "status": (error or _OK).status_for(request.protocol),
            "latency_ms": round(elapsed * 1000, 3),
            "model_version": self.card.version,
            "key_name": request.key.name if request.key else None,
        }
        if outcome == "ok":
            metrics.child(metrics.REQUEST_DURATION, request.protocol).observe(elapsed)
            counts = Counter(request.tiers.tolist())
            for tier, count in counts.items():
                metrics.child(metrics.LEADS_SCORED, tier).inc(count)
            metrics.observe_many(metrics.SCORE, request.scores)
            if self.extras.drift is not None:
                self.extras.drift.observe(request.leads.matrix, request.scores)
            self._record(request, elapsed)
            entry.update(
                lead_count=request.leads.count, first_lead_id=request.leads.lead_ids[0], tiers=dict(counts)
            )
            log.info("scored", extra=entry)
        else:
            entry["error"] = error.message[:500] if error else None
            log.log(
                logging.ERROR if outcome in {"error", "predictor_unavailable"} else logging.INFO,
                "rejected",
                extra=entry,
            )

    def _record(self, request: ScoringRequest, elapsed: float) -> None:
        recorder = self.extras.recorder
        if recorder is None:
            return
        recorder.submit(
            ScoredBatch(
                scoring_id=request.scoring_id,
                request_id=request.request_id,
                scored_at=datetime.now(UTC),
                model_name=self.model_name,
                model_version=self.card.version,
                api_key_name=request.key.name if request.key else "",
                protocol=request.protocol,
                request_form=request.form,
                latency_ms=elapsed * 1000,
                lead_ids=request.leads.lead_ids,
                scores=request.scores,
                buckets=request.buckets,
                tiers=request.tiers.tolist(),
                features=request.leads.matrix if self.extras.record_features else None,
            )
        )


def _decoded(decode, *args) -> DecodedLeads:
    """`decode(*args)`, with the feature problems of a refusal counted in lead_scoring_validation_failures_total, as
    validate_matrix's are: a value of the wrong type or a renamed feature is a validation failure of that feature
    (an unknown name counts as field "unknown")."""
    try:
        return decode(*args)
    except InvalidRequest as exc:
        counts = getattr(exc, "feature_counts", None) or feature_problem_counts(exc.problems)
        for (name, rule), count in counts.items():
            metrics.VALIDATION_FAILURES.labels(name, rule).inc(count)
        raise
