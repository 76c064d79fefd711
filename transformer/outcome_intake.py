"""Outcomes in, over the API: auth → limits → validate every outcome → dedupe → record. Protocol-neutral.

Same keys, rate limits and error shapes as scoring (`{"error", "problems": [{row, field, rule, value, message}]}`).
All or nothing: one bad outcome refuses the call (400) and nothing of it is recorded, like a bad lead.
Idempotent on (lead_id, outcome, occurred_at): a repeat is answered like the first call and counted as a duplicate;
this replica remembers recent ids so a retried call is not written twice, and the lake dedupes on `outcome_id`
(the same uuid5 everywhere) for repeats that reach another replica.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import UTC, datetime

from prometheus_client import Counter

from contract.outcomes import OUTCOMES, check_outcomes, outcome_key
from transformer import request_ids
from transformer.auth import KeyStore
from transformer.errors import InvalidRequest, ScoringError
from transformer.sink.outcomes import OutcomeBatch, utc_day

OUTCOMES_RECEIVED = Counter(
    "lead_scoring_outcomes_received_total", "Outcomes accepted by POST /v1/outcomes", ["outcome", "result"]
)  # result: recorded | duplicate
log = logging.getLogger("transformer.requests")

OUTCOMES_REJECTED = Counter(
    "lead_scoring_outcomes_rejected_total", "Outcome calls refused, by reason", ["reason"]
)
# Every series at 0 from the start: increase() sees a series' first sample as its start, so a first refusal (or the
# first outcome of a kind) on a series made only then would count as nothing in a dashboard or an alert.
for _outcome in OUTCOMES:
    for _result in ("recorded", "duplicate"):
        OUTCOMES_RECEIVED.labels(_outcome, _result)
for _reason in ("unauthorized", "invalid", "rate_limited", "unavailable", "cancelled"):
    OUTCOMES_REJECTED.labels(_reason)


class OutcomesUnavailable(ScoringError):
    """The outcome recorder is full (or closed): nothing of the call was accepted; the client retries."""

    http_status = 503
    grpc_status = "UNAVAILABLE"
    outcome = "unavailable"

    def headers(self) -> dict[str, str]:
        return {"retry-after": "5"}


class OutcomeIntake:
    def __init__(
        self,
        keys: KeyStore,
        recorder,
        *,
        max_outcomes: int = 1000,
        max_reported: int = 20,
        remember: int = 200_000,
    ):
        self.keys = keys
        self.recorder = recorder
        self.max_outcomes = max_outcomes
        self.max_reported = max_reported
        self._remember = remember
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def accept(
        self,
        api_key: str | None,
        payload: object,
        request_id: str,
        request_id_refused: dict | None = None,
        *,
        unparsed: str | None = None,
    ) -> dict:
        """`request_id_refused`: the problem with the client's x-request-id (transformer/request_ids.py), refused
        after the key check, as on the scoring routes. `unparsed`: why the body is not JSON (then `payload` is
        None), refused after those too: a caller without a valid key hears 401, never the parser's complaint.
        Every call ends with one log line (logger transformer.requests), as every scoring does."""
        call = _Call(request_id)
        try:
            answer = self._accept(call, api_key, payload, request_id_refused, unparsed)
        except ScoringError as error:
            OUTCOMES_REJECTED.labels(error.outcome).inc()
            call.log(error.outcome, error.http_status, error=error.message[:500])
            raise
        call.log(
            "ok",
            200,
            accepted=answer["accepted"],
            recorded=answer["recorded"],
            duplicates=answer["duplicates"],
        )
        return answer

    def refused_unread(self, request_id: str, error: ScoringError) -> None:
        """A call refused before its body was read (413, over --max_body_bytes): counted and logged like every
        other refusal, though no key was checked (a 413 says nothing about what the body held)."""
        OUTCOMES_REJECTED.labels(error.outcome).inc()
        _Call(request_id).log(error.outcome, error.http_status, error=error.message[:500])

    def cancelled(self, request_id: str) -> None:
        """A call whose client went away before its body arrived: nothing was judged or recorded; its line says so
        (499, the "client closed request" of nginx and Envoy logs) instead of the app's 500 and traceback."""
        OUTCOMES_REJECTED.labels("cancelled").inc()
        _Call(request_id).log(
            "cancelled", 499, error="the client closed the connection before the body arrived"
        )

    def forget(self, *_drop: object) -> None:
        """Forget every remembered id: the sink dropped outcomes this replica had answered as recorded, and their
        callers' resends must be written, not answered as duplicates (the lake dedupes on outcome_id anyway)."""
        with self._lock:
            self._seen.clear()

    def _accept(
        self,
        call: _Call,
        api_key: str | None,
        payload: object,
        request_id_refused: dict | None,
        unparsed: str | None,
    ) -> dict:
        entry = self.keys.authenticate(api_key)
        call.key_name = entry.name  # before the charge: a 429's line names the key that ran out
        self.keys.charge(entry)
        if request_id_refused is not None:
            raise request_ids.refusal(request_id_refused)
        if unparsed is not None:
            raise InvalidRequest(unparsed)
        items = _outcome_list(payload)
        if not 1 <= len(items) <= self.max_outcomes:
            raise InvalidRequest(
                f"a call carries 1 to {self.max_outcomes} outcomes (--max_outcomes), got {len(items)}",
                [
                    {
                        "row": None,
                        "field": "outcomes",
                        "rule": "max_items" if items else "min_items",
                        "value": len(items),
                        "message": f"1..{self.max_outcomes} outcomes per call",
                    }
                ],
            )
        valid, problems, total = check_outcomes(items, max_reported=self.max_reported)
        if total:
            more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
            raise InvalidRequest(
                f"{total} invalid outcome value(s): " + "; ".join(p["message"] for p in problems) + more,
                problems,
                total,
            )
        ids = [outcome_key(o.lead_id, o.outcome, o.occurred_at) for o in valid]
        received_at = datetime.now(UTC)
        fresh: dict[str, list[int]] = {}
        repeats: list[int] = []  # rows already recorded, by this replica or earlier in this call
        with self._lock:
            in_call: set[str] = set()
            for i, oid in enumerate(ids):
                if oid in self._seen or oid in in_call:
                    repeats.append(i)
                    continue
                in_call.add(oid)
                fresh.setdefault(utc_day(valid[i].occurred_at), []).append(i)
        recorded: list[int] = []
        try:
            for rows in fresh.values():  # one file partition per day of occurred_at
                batch = OutcomeBatch(
                    request_id=call.request_id,
                    received_at=received_at,
                    source="api",
                    api_key_name=entry.name,
                    lead_ids=[valid[i].lead_id for i in rows],
                    outcomes=[valid[i].outcome for i in rows],
                    occurred_at=[valid[i].occurred_at for i in rows],
                    outcome_ids=[ids[i] for i in rows],
                    deal_values=[valid[i].deal_value for i in rows],
                    scoring_ids=[valid[i].scoring_id for i in rows],
                    request_ids=[valid[i].request_id for i in rows],
                )
                if not self.recorder.submit(batch):
                    raise OutcomesUnavailable(
                        "the outcome recorder is full; nothing more of this call was accepted, "
                        "retry it (repeats are deduplicated)"
                    )
                recorded += rows
        finally:
            # What was recorded stays remembered (so a retry of the whole call is not written twice) and counted,
            # also when the recorder refused the rest; repeats count as duplicates only when the call succeeds.
            self._remember_ids([ids[i] for i in recorded])
            for i in recorded:
                OUTCOMES_RECEIVED.labels(valid[i].outcome, "recorded").inc()
        for i in repeats:
            OUTCOMES_RECEIVED.labels(valid[i].outcome, "duplicate").inc()
        return {
            "accepted": len(valid),
            "recorded": len(recorded),
            "duplicates": len(repeats),
            "outcome_ids": ids,
            "request_id": call.request_id,
        }

    def _remember_ids(self, ids: list[str]) -> None:
        with self._lock:
            for oid in ids:
                self._seen[oid] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)


class _Call:
    """One outcomes call, for its log line: the same logger and fields as a scoring's line."""

    def __init__(self, request_id: str):
        self.request_id = request_id
        self.key_name: str | None = None
        self.started = time.perf_counter()

    def log(self, outcome: str, status: int, **fields: object) -> None:
        log.log(
            logging.INFO,
            "outcomes recorded" if outcome == "ok" else "outcomes rejected",
            extra={
                "request_id": self.request_id,
                "route": "outcomes",
                "outcome": outcome,
                "status": status,
                "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
                "key_name": self.key_name,
                **fields,
            },
        )


def _outcome_list(payload: object) -> list:
    """The body's `outcomes` list. The body is an object with that one member: an unknown member (a `scoring_id`
    put beside the list instead of in an outcome) is refused, not ignored."""
    items = payload.get("outcomes") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        present = isinstance(payload, dict) and "outcomes" in payload
        raise InvalidRequest(
            'body must be a JSON object {"outcomes": [ ... ]}',
            [
                {
                    "row": None,
                    "field": "outcomes",
                    "rule": "type" if present else "required",
                    "value": None,
                    "message": "outcomes must be a list of outcomes"
                    if present
                    else "a list of outcomes is required",
                }
            ],
        )
    unknown = [str(name)[:64] for name in payload if name != "outcomes"]
    if unknown:
        raise InvalidRequest(
            f"unknown member(s) of the body: {', '.join(unknown[:5])}; it holds only 'outcomes'",
            [
                {
                    "row": None,
                    "field": name,
                    "rule": "unknown_field",
                    "value": None,
                    "message": f"{name} is not a member of the body (only 'outcomes')",
                }
                for name in unknown[:20]
            ],
            len(unknown),
        )
    return items
