"""The scoring path, one way: auth → decode → validate → predict → tier → respond, and record on the side.

Protocol-neutral: the KServe adapter (and the fast REST route) call these steps; nothing here knows KServe.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from contract.model_card import ModelCard
from contract.validation import LeadsRejected, validate_matrix
from transformer import metrics
from transformer.auth import KeyEntry, KeyStore
from transformer.codec import DecodedLeads, Tensor, decode_v1, decode_v2, encode_v1, encode_v2
from transformer.errors import InvalidRequest, ScoringError
from transformer.sink import ScoredBatch

log = logging.getLogger("transformer.requests")


class Predictor(Protocol):
    mode: str

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray: ...
    async def ready(self) -> bool: ...
    async def close(self) -> None: ...


class Recorder(Protocol):
    def submit(self, batch) -> bool: ...


@dataclass
class ScoringRequest:
    """Everything one request carries through the path; created at the door, finished when the answer is built."""

    protocol: str                      # rest | grpc
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    form: str = "unknown"
    key: KeyEntry | None = None
    leads: DecodedLeads | None = None
    scores: np.ndarray | None = None
    buckets: np.ndarray | None = None
    tiers: np.ndarray | None = None
    reasons_k: int = 0
    reasons: tuple | None = None       # ReasonExplainer.top() result when reason codes were asked for
    headers: dict = field(default_factory=dict)
    v2_id: str | None = None           # the V2 request's own `id`, echoed in the answer
    binary_outputs: bool = False
    requested_outputs: list | None = None   # V2 outputs the client named (KServe RequestedOutput objects)


def request_id_from(headers: dict | None) -> str:
    rid = (headers or {}).get("x-request-id")
    return rid[:128] if rid else uuid.uuid4().hex


class Scorer:
    def __init__(self, card: ModelCard, predictor: Predictor, keys: KeyStore, *, model_name: str,
                 max_leads: int = 1000, max_reported: int = 20, recorder: Recorder | None = None,
                 record_features: bool = True, reasons_max: int = 50, reasons_max_leads: int = 200, explainer=None, drift=None,
                 shadow=None):
        self.card = card
        self.tier_map = card.tier_map
        self.predictor = predictor
        self.keys = keys
        self.model_name = model_name
        self.max_leads = max_leads
        self.max_reported = max_reported
        self.recorder = recorder
        self.record_features = record_features
        self.reasons_max = reasons_max
        self.reasons_max_leads = reasons_max_leads
        self.explainer = explainer
        self.drift = drift
        self.shadow = shadow
        metrics.MODEL_INFO.labels(model_name, card.version).set(1)
        for tier, share in card.expected_tier_shares.items():
            metrics.EXPECTED_TIER_SHARE.labels(tier).set(share)
        metrics.prime(hop_mode=predictor.mode)

    # 1. auth
    def admit(self, request: ScoringRequest, api_key: str | None) -> None:
        request.key = self.keys.authenticate(api_key)
        self.keys.charge(request.key)

    # 2–3. decode + validate
    def decode_v1(self, request: ScoringRequest, payload: object) -> None:
        request.form = "v1_instances"
        self._accept(request, decode_v1(payload, self.max_leads, self.max_reported))

    def decode_v2(self, request: ScoringRequest, inputs: list[Tensor]) -> None:
        # Best guess before decoding, so a rejected request is still counted under its form.
        request.form = "v2_tensor" if any(len(t.shape) == 2 and t.shape[-1] > 1 for t in inputs) else "v2_columns"
        self._accept(request, decode_v2(inputs, self.max_leads, self.max_reported))

    def reasons_requested(self, request: ScoringRequest, value: object) -> None:
        if value in (None, False, 0):
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self.reasons_max:
            raise InvalidRequest(f"parameter 'reasons' must be a whole number from 1 to {self.reasons_max}, got {value!r}",
                                 [{"row": None, "field": "reasons", "rule": "range", "value": str(value)[:20],
                                   "message": f"1..{self.reasons_max}"}])
        if self.explainer is None:
            raise InvalidRequest("reason codes are not available on this deployment")
        request.reasons_k = value

    def _accept(self, request: ScoringRequest, leads: DecodedLeads) -> None:
        request.form = leads.form
        if request.reasons_k and leads.count > self.reasons_max_leads:
            # TreeSHAP costs ~0.5 ms a lead: one huge request must not hold a worker thread for seconds.
            raise InvalidRequest(f"reason codes are limited to {self.reasons_max_leads} leads per request "
                                 f"(--reasons_max_leads), got {leads.count}: split the batch or drop 'reasons'",
                                 [{"row": None, "field": "reasons", "rule": "lead_count", "value": leads.count,
                                   "message": f"at most {self.reasons_max_leads} leads with reasons"}])
        try:
            validate_matrix(leads.matrix, self.max_reported)
        except LeadsRejected as exc:
            for problem in exc.problems:
                metrics.VALIDATION_FAILURES.labels(problem["field"], problem["rule"]).inc()
            raise InvalidRequest(exc.message, exc.problems, exc.total) from None
        leads.matrix = leads.matrix.astype(np.float32)
        request.leads = leads

    # 4–5. predict + tier
    async def predict(self, request: ScoringRequest) -> None:
        started = time.perf_counter()
        reasons = None
        if request.reasons_k:
            # TreeSHAP costs ~0.5 ms a lead: off the event loop (xgboost releases the GIL), overlapping the hop.
            reasons = asyncio.ensure_future(asyncio.to_thread(self.explainer.top, request.leads.matrix, request.reasons_k))
        try:
            scores = await self.predictor.predict(request.leads.matrix, request.headers)
        finally:
            metrics.PREDICTOR_HOP.labels(self.predictor.mode).observe(time.perf_counter() - started)
        if reasons is not None:
            request.reasons = await reasons
        request.scores = scores
        request.buckets = self.tier_map.buckets(scores)
        request.tiers = self.tier_map.tiers(request.buckets)
        if self.shadow is not None:   # off the response path: a task, never awaited here
            self.shadow.maybe_submit(request.request_id, request.leads.matrix, request.scores, request.tiers,
                                     lead_ids=request.leads.lead_ids, api_key_name=request.key.name if request.key else "",
                                     protocol=request.protocol, request_form=request.form)

    # 6. respond (+ 7. record, 8. observe)
    def v2_outputs(self, request: ScoringRequest) -> list[Tensor]:
        reasons = self.explainer.tensors_from_top(*request.reasons) if request.reasons is not None else None
        outputs = encode_v2(request.scores, request.buckets, request.tiers, request.leads.lead_ids, reasons)
        self.finish(request, "ok")
        return outputs

    def v1_body(self, request: ScoringRequest) -> dict:
        reasons = (self.explainer.per_lead_from_top(request.leads.matrix, *request.reasons)
                   if request.reasons is not None else None)
        body = encode_v1(request.scores, request.buckets, request.tiers, request.leads.lead_ids,
                         self.model_name, self.card.version, reasons)
        self.finish(request, "ok")
        return body

    def finish(self, request: ScoringRequest, outcome: str, error: ScoringError | None = None) -> None:
        elapsed = time.perf_counter() - request.started
        metrics.REQUESTS.labels(request.protocol, request.form, outcome).inc()
        metrics.REQUEST_DURATION.labels(request.protocol).observe(elapsed)
        entry = {"request_id": request.request_id, "protocol": request.protocol, "form": request.form,
                 "outcome": outcome, "status": (error.http_status if error else 200) if request.protocol == "rest"
                 else (error.grpc_status if error else "OK"), "latency_ms": round(elapsed * 1000, 3), "model_version": self.card.version,
                 "key_name": request.key.name if request.key else None}
        if outcome == "ok":
            tiers = request.tiers
            counts = Counter(tiers.tolist())
            for tier, count in counts.items():
                metrics.LEADS_SCORED.labels(tier).inc(count)
            metrics.observe_many(metrics.SCORE, request.scores)
            if self.drift is not None:
                self.drift.observe(request.leads.matrix, request.scores)
            self._record(request, elapsed)
            entry.update(lead_count=request.leads.count, first_lead_id=request.leads.lead_ids[0], tiers=dict(counts))
            log.info("scored", extra=entry)
        else:
            entry["error"] = error.message[:500] if error else None
            log.log(logging.ERROR if outcome in {"error", "predictor_unavailable"} else logging.INFO, "rejected",
                    extra=entry)

    def _record(self, request: ScoringRequest, elapsed: float) -> None:
        if self.recorder is None:
            return
        self.recorder.submit(ScoredBatch(
            request_id=request.request_id, scored_at=datetime.now(UTC), model_name=self.model_name,
            model_version=self.card.version, api_key_name=request.key.name if request.key else "",
            protocol=request.protocol, request_form=request.form, latency_ms=elapsed * 1000,
            lead_ids=request.leads.lead_ids, scores=request.scores, buckets=request.buckets,
            tiers=request.tiers.tolist(), features=request.leads.matrix if self.record_features else None))
