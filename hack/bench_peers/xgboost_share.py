"""How much of our CPU per lead is xgboost's own, measured in every round of `make bench`.

A call into xgboost 2.1 (the version kserve-xgbserver pins) has a fixed cost before the first tree: every
`XGBoosterPredictFromDense` re-initialises the proxy matrix's `Context`, which compiles three `std::regex` to parse
the device string "cpu" (`Context::SetDeviceOrdinal`; ~2/3 of a one-lead call in `perf record --call-graph dwarf`,
docs/performance.md, twelfth pass). xgboost 3.0 and 3.4 removed that cost upstream; this project cannot take them
while the predictor runs 2.1. What the transformer pays per lead therefore depends on how many leads share a call,
which request coalescing (transformer/coalesce.py) decides under load.

So each round measures both:
* the library alone, in a fresh interpreter: CPU µs of one call for one lead, and per extra lead in a call of 101;
* leads per predictor call in each of our runs, from the transformer's own `lead_scoring_coalesced_batch_rows`
  histogram (read from /metrics before and after the timed window).

and the report gives xgboost's CPU per lead in the in-process runs, `(one + (n − 1) × extra) / n` for n leads per
call, next to the transformer's measured CPU per lead: the part of the budget no change in this repository buys back.
It is a lower bound: the probe calls the library in a tight loop with warm caches, while in the server each call
follows a request's Python work (`perf` on a loaded in-process server put libxgboost and the regex's libstdc++ calls
at 12–15 % of its CPU in batch, where this estimate says ~10 %).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hack.bench_peers.measure import run_probe
from hack.bench_peers.stats import spread

COALESCED = "lead_scoring_coalesced_batch_rows"

# The booster as the in-process transformer loads it, the leads as the bench sends them; interleaved reps, median.
_PROBE = """
import statistics, sys, time
from pathlib import Path
from hack.bench_peers.workload import fill_missing, lead_matrix
from transformer.native_xgboost import NativeBooster
booster = NativeBooster.from_model_dir(Path(sys.argv[1]))
many = fill_missing(lead_matrix(101, seed=5))
one = many[:1].copy()
def per_call(matrix, calls):
    started = time.process_time()
    for _ in range(calls):
        booster.predict(matrix)
    return (time.process_time() - started) / calls * 1e6
per_call(one, 200), per_call(many, 50)  # warm: caches, the library's thread-local buffers
ones, manys = [], []
for _ in range(7):
    ones.append(per_call(one, 300))
    manys.append(per_call(many, 100))
print(statistics.median(ones), statistics.median(manys))
"""


def xgboost_call_us(model_dir: Path, root: Path) -> dict:
    """CPU µs of one xgboost call for one lead, and per extra lead in a call (fresh interpreter, nothing else)."""
    one, many = run_probe("xgboost call", _PROBE, str(model_dir), cwd=root)
    return {"one_lead_us": one, "per_extra_lead_us": max(many - one, 0.0) / 100}


def coalesced_totals(metrics_text: str) -> tuple[float, float]:
    """(predictor calls, leads in them) so far, from a transformer's /metrics page; (0, 0) before the first call."""
    calls = leads = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != COALESCED:
            continue
        for sample in family.samples:
            if sample.name == COALESCED + "_count":
                calls += sample.value
            elif sample.name == COALESCED + "_sum":
                leads += sample.value
    return calls, leads


def leads_per_call(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    calls = after[0] - before[0]
    return (after[1] - before[1]) / calls if calls > 0 else None


def xgboost_ms_per_lead(call: dict, leads: float) -> float:
    """xgboost's CPU per lead when `leads` leads share each call (the fixed cost spread over them)."""
    return (call["one_lead_us"] + (leads - 1) * call["per_extra_lead_us"]) / leads / 1000


def share_rows(records: list[dict], key: str = "f") -> list[dict]:
    """Report rows for target `key`'s runs, per round: leads per call, xgboost's CPU ms per lead, its share."""
    rows = []
    # Reason codes add TreeSHAP calls this does not count: their runs are left out.
    kinds = sorted(
        {k for r in records for k in r["targets"].get(key, {}).get("runs", {}) if "reasons" not in k}
    )
    for kind in kinds:
        per_call, ms, share = {}, {}, {}
        for record in records:
            run = record["targets"].get(key, {}).get("runs", {}).get(kind)
            call = record.get("xgboost_call_us")
            leads = run.get("leads_per_predictor_call") if run else None
            if not call or not leads:
                continue
            n = record["round"]
            per_call[n] = leads
            ms[n] = xgboost_ms_per_lead(call, leads)
            mine = run["cpu_ms_per_lead"].get("transformer")
            if mine:
                share[n] = ms[n] / mine
        if not per_call:
            continue
        for name, values, spec in (
            (f"({key}) {kind}: leads per xgboost call", per_call, ".1f"),
            (
                f"({key}) {kind}: xgboost CPU ms per lead (library's own cost at that many leads a call)",
                ms,
                ".3f",
            ),
            (f"({key}) {kind}: xgboost's share of the transformer's CPU per lead", share, ".2f"),
        ):
            if values:
                rows.append(
                    {
                        "name": name,
                        "per_round": values,
                        "spread": spread(list(values.values())),
                        "format": spec,
                    }
                )
    return rows
