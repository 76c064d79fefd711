"""Which scoring an outcome judges: the attribution rule, in one place (docs/model-quality.md § Attribution).

1. Outcomes are deduplicated on `outcome_id` (= lead_id, outcome, occurred_at). A lead's *label* is its first
   terminal outcome: converted → 1, disqualified → 0 (converted wins a tie). `open` outcomes are not labels.
2. A scoring of that lead by model version V is *eligible* when `occurred_at - label_window <= scored_at <= occurred_at`:
   never a scoring made after the outcome (it may have seen post-outcome data: leakage), never one so old that the
   lead has changed since.
3. Per (lead, model version) the attributed scoring is the one the outcome names by `scoring_id`, when eligible;
   otherwise the latest eligible scoring. Each version is judged on the rows stamped with it (the transformer's
   card; in split mode during a canary most of a canary's rows were scored by the stable booster, docs/kubernetes.md).

Only the partitions that can hold eligible scorings are read: `dt` from (first outcome - window) to the last outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from contract.outcomes import TERMINAL
from quality.lake import OUTCOMES_PREFIX, Lake
from transformer.sink.outcomes import outcomes_schema
from transformer.sink.schema import lake_schema

SCORE_KEY = re.compile(r"^model=([^/]+)/dt=(\d{4}-\d\d-\d\d)/hour=\d\d/[^/]+\.parquet$")
OUTCOME_KEY = re.compile(r"^dt=(\d{4}-\d\d-\d\d)/[^/]+\.parquet$")
SCORE_COLUMNS = [
    "scoring_id",
    "request_id",
    "row",
    "lead_id",
    "scored_at",
    "model_name",
    "model_version",
    "score",
    "tier",
]


@dataclass(frozen=True)
class Window:
    since: datetime  # outcomes that occurred in [since, until) are measured
    until: datetime
    label_window: timedelta  # how long before its outcome a scoring may be

    @property
    def scorings_from(self) -> datetime:
        return self.since - self.label_window


def _days(start: datetime, end: datetime) -> set[str]:
    day, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    out = set()
    while day <= last:
        out.add(day.isoformat())
        day += timedelta(days=1)
    return out


def read_outcomes(lake: Lake, window: Window) -> pa.Table:
    outcomes = lake.child(OUTCOMES_PREFIX)
    days = _days(window.since, window.until)
    # Only the day partitions of the window are listed, let alone read.
    keys = [
        k
        for day in sorted(days & {f[3:] for f in outcomes.folders() if f.startswith("dt=")})
        for k in outcomes.list(f"dt={day}")
        if OUTCOME_KEY.match(k)
    ]
    table = outcomes.read(
        keys,
        columns=["outcome_id", "lead_id", "outcome", "occurred_at", "scoring_id", "deal_value"],
        schema=outcomes_schema(),
    )
    ts = (
        pa.scalar(window.since, pa.timestamp("us", tz="UTC")),
        pa.scalar(window.until, pa.timestamp("us", tz="UTC")),
    )
    table = table.filter(
        pc.and_(pc.greater_equal(table["occurred_at"], ts[0]), pc.less(table["occurred_at"], ts[1]))
    )
    # Dedupe: the same outcome posted twice, or posted and backfilled.
    if table.num_rows:
        codes = pc.dictionary_encode(table["outcome_id"]).combine_chunks().indices.to_numpy()
        _, first = np.unique(codes, return_index=True)
        if first.size != table.num_rows:
            table = table.take(pa.array(np.sort(first)))
    return table


def labels_of(outcomes: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """One row per labelled lead (lead_id, label, occurred_at, scoring_id) and counts of what came in."""
    kinds = outcomes["outcome"].to_numpy(zero_copy_only=False)
    counts = {kind: int((kinds == kind).sum()) for kind in ("converted", "disqualified", "open")}
    terminal = outcomes.filter(pc.is_in(outcomes["outcome"], pa.array(TERMINAL)))
    if terminal.num_rows == 0:
        empty = pa.table(
            {
                "lead_id": pa.array([], pa.string()),
                "label": pa.array([], pa.int8()),
                "occurred_at": pa.array([], pa.timestamp("us", tz="UTC")),
                "o_scoring_id": pa.array([], pa.string()),
            }
        )
        return empty, counts
    lead = pc.dictionary_encode(terminal["lead_id"]).combine_chunks()
    codes = lead.indices.to_numpy()
    when = terminal["occurred_at"].cast(pa.int64()).to_numpy()
    converted = terminal["outcome"].to_numpy(zero_copy_only=False) == "converted"
    order = np.lexsort((~converted, when, codes))  # per lead: earliest first, converted first on a tie
    first = order[np.r_[True, codes[order][1:] != codes[order][:-1]]]
    labels = pa.table(
        {
            "lead_id": terminal["lead_id"].take(pa.array(first)),
            "label": pa.array(converted[first].astype(np.int8)),
            "occurred_at": terminal["occurred_at"].take(pa.array(first)),
            "o_scoring_id": terminal["scoring_id"].take(pa.array(first)),
        }
    )
    counts["labelled_leads"] = labels.num_rows
    return labels, counts


def score_keys(lake: Lake, start: datetime, end: datetime) -> list[str]:
    """Files of the day partitions that can hold eligible scorings, of every model: a listing per (model, day),
    never of the whole lake (which grows by thousands of files a day)."""
    days = _days(start, end)
    keys = []
    for model in (f for f in lake.folders() if f.startswith("model=")):
        present = {f[3:] for f in lake.folders(model) if f.startswith("dt=")}
        for day in sorted(days & present):
            keys += [k for k in lake.list(f"{model}/dt={day}") if SCORE_KEY.match(k)]
    return keys


def read_scorings(
    lake: Lake, keys: list[str], lead_ids: pa.Array | None, *, features: list[str] | None = None
) -> pa.Table:
    """Scorings in these files, only of `lead_ids` (pushed into the scan), only the columns the join needs."""
    columns = SCORE_COLUMNS + (features or [])
    schema = lake_schema(tuple(f[2:] for f in features) if features else (), include_features=bool(features))
    flt = ds.field("lead_id").isin(lead_ids) if lead_ids is not None else None
    table = lake.read(keys, columns=columns, filter=flt, schema=schema)
    # Schema v1 files have no scoring_id: (request_id, row) was their key, keep it as their id.
    sid = table["scoring_id"]
    if sid.null_count:
        fallback = pc.binary_join_element_wise(table["request_id"], pc.cast(table["row"], pa.string()), "#")
        table = table.set_column(0, "scoring_id", pc.coalesce(sid, fallback))
    return table


def attribute(scorings: pa.Table, labels: pa.Table, label_window: timedelta) -> pa.Table:
    """Per (lead, model version): the attributed scoring with the lead's label (rule at the top of this module)."""
    joined = scorings.join(labels, keys="lead_id", join_type="inner", use_threads=True)
    if joined.num_rows == 0:
        return joined
    scored = joined["scored_at"].cast(pa.int64()).to_numpy()
    occurred = joined["occurred_at"].cast(pa.int64()).to_numpy()
    window_us = int(label_window / timedelta(microseconds=1))
    eligible = (scored <= occurred) & (scored >= occurred - window_us)
    joined = joined.filter(pa.array(eligible))
    if joined.num_rows == 0:
        return joined
    scored = joined["scored_at"].cast(pa.int64()).to_numpy()
    named = pc.fill_null(pc.equal(joined["scoring_id"], joined["o_scoring_id"]), False).to_numpy(
        zero_copy_only=False
    )
    lead = pc.dictionary_encode(joined["lead_id"]).combine_chunks().indices.to_numpy()
    version = pc.dictionary_encode(joined["model_version"]).combine_chunks().indices.to_numpy()
    order = np.lexsort((-scored, ~named, version, lead))  # named scoring first, then the latest
    lead_s, version_s = lead[order], version[order]
    first = order[np.r_[True, (lead_s[1:] != lead_s[:-1]) | (version_s[1:] != version_s[:-1])]]
    return joined.take(pa.array(np.sort(first)))
