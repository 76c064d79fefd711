"""`make bench`'s account of xgboost's own CPU per lead: leads per call read from the transformer's coalescing
histogram, the library's cost per call measured alone, and the report rows built from both."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest

from hack.bench import markdown
from hack.bench_peers.xgboost_share import (
    coalesced_totals,
    leads_per_call,
    share_rows,
    xgboost_call_us,
    xgboost_ms_per_lead,
)
from tests.conftest import ROOT
from transformer.coalesce import Coalescer


class EchoPredictor:
    mode = "fake"

    async def predict(self, matrix, headers=None):
        return matrix[:, 0].astype(np.float32)


def test_leads_per_call_is_read_from_what_coalescing_records_on_the_metrics_page():
    before = coalesced_totals(generate_latest(REGISTRY).decode())

    async def three_requests_together():
        coalescer = Coalescer(EchoPredictor())
        leads = [np.full((n, 50), float(n), dtype=np.float32) for n in (1, 1, 2)]
        return await asyncio.gather(*(coalescer.predict(m) for m in leads))

    answers = asyncio.run(three_requests_together())
    after = coalesced_totals(generate_latest(REGISTRY).decode())

    assert [a.tolist() for a in answers] == [[1.0], [1.0], [2.0, 2.0]]
    assert (after[0] - before[0], after[1] - before[1]) == (1, 4)  # one predictor call, four leads
    assert leads_per_call(before, after) == 4
    assert leads_per_call(after, after) is None  # no call in the window: nothing to divide
    assert coalesced_totals("# no such metric here\n") == (0, 0)


def test_the_fixed_cost_of_a_call_is_spread_over_the_leads_that_share_it():
    call = {"one_lead_us": 200.0, "per_extra_lead_us": 2.0}
    assert xgboost_ms_per_lead(call, 1) == pytest.approx(0.200)
    assert xgboost_ms_per_lead(call, 5) == pytest.approx((200 + 4 * 2) / 5 / 1000)
    assert xgboost_ms_per_lead(call, 500) == pytest.approx((200 + 499 * 2) / 500 / 1000)


def _record(round_no: int, call: dict | None, runs: dict) -> dict:
    record = {"round": round_no, "targets": {"f": {"runs": runs}}}
    if call is not None:
        record["xgboost_call_us"] = call
    return record


def _run(leads: float | None, transformer_ms: float) -> dict:
    return {"leads_per_predictor_call": leads, "cpu_ms_per_lead": {"transformer": transformer_ms}}


def test_report_rows_per_round_leave_out_reason_runs_and_rounds_without_a_measure():
    call = {"one_lead_us": 200.0, "per_extra_lead_us": 2.0}
    records = [
        _record(1, call, {"single": _run(5, 0.5), "batch+reasons": _run(100, 0.8)}),
        _record(2, call, {"single": _run(4, 0.4)}),
        _record(3, None, {"single": _run(4, 0.4)}),  # the probe did not run: no value for this round
        _record(4, call, {"single": _run(None, 0.4)}),  # no call counted: no value either
    ]
    rows = {row["name"]: row for row in share_rows(records)}

    assert not any("reasons" in name for name in rows)
    per_call = rows["(f) single: leads per xgboost call"]
    assert per_call["per_round"] == {1: 5, 2: 4}
    ms = rows["(f) single: xgboost CPU ms per lead (library's own cost at that many leads a call)"]
    assert ms["per_round"][1] == pytest.approx(0.0416)
    assert ms["per_round"][2] == pytest.approx(0.0515)
    share = rows["(f) single: xgboost's share of the transformer's CPU per lead"]
    assert share["per_round"][1] == pytest.approx(0.0416 / 0.5)
    assert share["spread"].median == pytest.approx((0.0416 / 0.5 + 0.0515 / 0.4) / 2)

    meta = {"rounds": 2, "seconds": 8, "warmup": 1, "threads": 2, "connections": 16, "nproc": 2}
    table = markdown(
        {}, [], list(rows.values()), None, {}, {**meta, "loadavg_at_start": (0.5, 0.5, 0.5)}, [call]
    )
    line = next(t for t in table.splitlines() if t.startswith("| (f) single: xgboost CPU ms"))
    assert "| 0.042, 0.051 | 0.047 | 0.042–0.051 |" in line
    assert "one call for one lead 200 CPU µs, each further lead in a call +2.00 µs" in table


def test_the_probe_measures_the_booster_as_the_in_process_transformer_loads_it(small_artifact):
    measured = xgboost_call_us(small_artifact, ROOT)
    assert measured["one_lead_us"] > 0
    assert measured["per_extra_lead_us"] >= 0
