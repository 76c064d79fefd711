"""Which scoring an outcome judges: the attribution rule, in one place (docs/model-quality.md § Attribution).

1. Outcomes are deduplicated on `outcome_id` (= lead_id, outcome, occurred_at). A lead's *label* is its first
   terminal outcome: converted → 1, disqualified → 0 (converted wins a tie). `open` outcomes are not labels.
2. A scoring of that lead by model version V is *eligible* when `occurred_at - label_window <= scored_at <= occurred_at`:
   never a scoring made after the outcome (it may have seen post-outcome data: leakage), never one so old that the
   lead has changed since.
3. Per (lead, model version) the attributed scoring is the one the outcome names by `scoring_id`, when eligible;
   otherwise the latest eligible scoring. Each version is judged on the rows stamped with it (the transformer's
   card; in split mode during a canary most of a canary's rows were scored by the stable booster, docs/kubernetes.md).

A lead's label does not depend on the window a report covers: the first terminal outcome is chosen over the window's
outcomes *and* the earlier terminal outcomes of the same leads back to (since - label window), and a lead whose
first terminal outcome is before `since` is not labelled in this window (it belongs to the window holding that one).

What is read, both tables by `dt` day partition: outcomes from (since - label window) to `until` (the earlier days
only for the terminal outcomes of the window's leads, filter pushed into the scan), scorings over the same span.
Not further back: every outcome ever recorded would make the nightly job's cost grow with the lake's age. The bound
keeps each scoring's label the same in every window: a terminal outcome older than (since - label window) is older
than every scoring this window can attribute, so such a lead (closed, scored again, closed again) is judged by its
later outcome on the scorings made after the first one only, never on one its first outcome already judged.
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
    since: datetime  # leads whose first terminal outcome occurred in [since, until) are measured
    until: datetime
    label_window: timedelta  # how long before its outcome a scoring may be

    @property
    def scorings_from(self) -> datetime:
        return self.since - self.label_window

    @property
    def history_from(self) -> datetime:
        """How far back earlier terminal outcomes are read: as far as the scorings (module docstring)."""
        return self.since - self.label_window


def _days(start: datetime, end: datetime) -> set[str]:
    day, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    out = set()
    while day <= last:
        out.add(day.isoformat())
        day += timedelta(days=1)
    return out


OUTCOME_COLUMNS = ["outcome_id", "lead_id", "outcome", "occurred_at", "scoring_id", "deal_value"]


def outcomes_table(lake: Lake, outcomes: Lake | None = None) -> Lake:
    """Where the outcomes are: `outcomes` when given (quality.report --outcomes-uri), else <lake>/_outcomes."""
    return outcomes if outcomes is not None else lake.child(OUTCOMES_PREFIX)


def _outcome_keys(table: Lake, days: set[str], present: set[str]) -> list[str]:
    return [k for day in sorted(days & present) for k in table.list(f"dt={day}") if OUTCOME_KEY.match(k)]


def has_outcome_files(table: Lake) -> bool:
    """Whether the outcomes table holds any outcome file at all, of any day (newest day first: usually one listing)."""
    days = sorted((f for f in table.folders() if f.startswith("dt=")), reverse=True)
    return any(OUTCOME_KEY.match(k) for day in days for k in table.list(day))


def _between(table: pa.Table, start: datetime, end: datetime) -> pa.Array:
    ts = pa.timestamp("us", tz="UTC")
    when = table["occurred_at"]
    return pc.and_(pc.greater_equal(when, pa.scalar(start, ts)), pc.less(when, pa.scalar(end, ts)))


def read_outcomes(lake: Lake, window: Window, *, outcomes: Lake | None = None) -> pa.Table:
    """Deduplicated outcomes that occurred in [since, until), plus the terminal outcomes of the same leads that occurred
    in [history_from, since): with them labels_of(…, since=) finds each lead's first terminal outcome."""
    table_of = outcomes_table(lake, outcomes)
    schema = outcomes_schema()
    window_days = _days(window.since, window.until)
    present = {f[3:] for f in table_of.folders() if f.startswith("dt=")}
    # Only the day partitions of the window (and, below, of the history) are listed, let alone read.
    # (With no file, read() gives the whole schema: select, so that the parts below concatenate.)
    keys = _outcome_keys(table_of, window_days, present)
    read = table_of.read(keys, columns=OUTCOME_COLUMNS, schema=schema)
    read = read.select(OUTCOME_COLUMNS)
    table = read.filter(_between(read, window.since, window.until))
    terminal = pc.is_in(table["outcome"], pa.array(TERMINAL))
    leads = pc.unique(table.filter(terminal)["lead_id"])
    if len(leads):
        earlier = (
            ds.field("lead_id").isin(leads)
            & ds.field("outcome").isin(pa.array(TERMINAL))
            & (ds.field("occurred_at") >= pa.scalar(window.history_from, pa.timestamp("us", tz="UTC")))
            & (ds.field("occurred_at") < pa.scalar(window.since, pa.timestamp("us", tz="UTC")))
        )
        history_days = _days(window.history_from, window.since) - window_days
        history = table_of.read(
            _outcome_keys(table_of, history_days, present),
            columns=OUTCOME_COLUMNS,
            filter=earlier,
            schema=schema,
        )
        # --since's own day was read above: its outcomes before --since are history too.
        table = pa.concat_tables([table, read.filter(earlier), history.select(OUTCOME_COLUMNS)])
    # Dedupe: the same outcome posted twice, or posted and backfilled.
    if table.num_rows:
        codes = pc.dictionary_encode(table["outcome_id"]).combine_chunks().indices.to_numpy()
        _, first = np.unique(codes, return_index=True)
        if first.size != table.num_rows:
            table = table.take(pa.array(np.sort(first)))
    return table


def labels_of(outcomes: pa.Table, since: datetime | None = None) -> tuple[pa.Table, dict[str, int]]:
    """One row per labelled lead (lead_id, label, occurred_at, scoring_id) and counts of what came in.

    A lead's label is its first terminal outcome among all of `outcomes`. With `since`, rows before it are history
    (read_outcomes): they are not counted, and a lead whose first terminal outcome is one of them is not labelled
    here (counted as `labelled_before_window`) — its later outcomes in the window are not labels."""
    counted = (
        outcomes
        if since is None
        else outcomes.filter(
            pc.greater_equal(outcomes["occurred_at"], pa.scalar(since, pa.timestamp("us", tz="UTC")))
        )
    )
    kinds = counted["outcome"].to_numpy(zero_copy_only=False)
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
        counts.update(labelled_leads=0, labelled_before_window=0)
        return empty, counts
    lead = pc.dictionary_encode(terminal["lead_id"]).combine_chunks()
    codes = lead.indices.to_numpy()
    when = terminal["occurred_at"].cast(pa.int64()).to_numpy()
    converted = terminal["outcome"].to_numpy(zero_copy_only=False) == "converted"
    order = np.lexsort((~converted, when, codes))  # per lead: earliest first, converted first on a tie
    first = order[np.r_[True, codes[order][1:] != codes[order][:-1]]]
    earlier = 0
    if since is not None:
        # Leads labelled before the window: their first terminal outcome is history, not a label of this window.
        since_us = int((since - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
        inside = when[first] >= since_us
        earlier = int((~inside).sum())
        first = first[inside]
    rows = pa.array(first, pa.int64())
    labels = pa.table(
        {  # one chunk each, also when empty (a chunked array of no chunks would be a null-typed lead filter)
            "lead_id": terminal["lead_id"].take(rows).combine_chunks(),
            "label": pa.array(converted[first].astype(np.int8)),
            "occurred_at": terminal["occurred_at"].take(rows).combine_chunks(),
            "o_scoring_id": terminal["scoring_id"].take(rows).combine_chunks(),
        }
    )
    counts["labelled_leads"] = labels.num_rows
    counts["labelled_before_window"] = earlier
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
    lake: Lake,
    keys: list[str],
    lead_ids: pa.Array | pa.ChunkedArray | None,
    *,
    features: list[str] | None = None,
) -> pa.Table:
    """Scorings in these files, only of `lead_ids` (pushed into the scan), only the columns the join needs."""
    columns = SCORE_COLUMNS + (features or [])
    schema = lake_schema(tuple(f[2:] for f in features) if features else (), include_features=bool(features))
    if isinstance(lead_ids, pa.ChunkedArray):  # an empty chunked array would bind as a null-typed value set
        lead_ids = lead_ids.combine_chunks()
    flt = ds.field("lead_id").isin(lead_ids) if lead_ids is not None else None
    table = lake.read(keys, columns=columns, filter=flt, schema=schema)
    # Schema v1 files have no scoring_id: (request_id, row) was their key, keep it as their id.
    sid = table["scoring_id"]
    if sid.null_count:
        fallback = pc.binary_join_element_wise(table["request_id"], pc.cast(table["row"], pa.string()), "#")
        table = table.set_column(0, "scoring_id", pc.coalesce(sid, fallback))
    return table


def named_scorings_unused(
    labels: pa.Table, scorings: pa.Table | None, label_window: timedelta
) -> tuple[int, int, int]:
    """(labels whose outcome names a `scoring_id`; of those, the ones whose lead has no scoring with that id among
    `scorings`; and the ones whose named scoring is not eligible: after the outcome, or older than the label
    window). Both kinds are judged on the lead's latest eligible scoring instead (rule 3), or on none. Many of them
    mean a client sends something other than the scoring response's `scoring_id` (a request id, another lead's
    scoring), or outcomes about other scorings than the ones it names. Matched on (lead, scoring): a request's leads
    share its scoring_id. An empty id names nothing (the outcome contract refuses one; a foreign writer may not)."""
    named = labels["o_scoring_id"]
    naming = labels.filter(pc.fill_null(pc.not_equal(named, ""), False))
    if naming.num_rows == 0:
        return 0, 0, 0
    if scorings is None or scorings.num_rows == 0:
        return naming.num_rows, naming.num_rows, 0
    matches = naming.select(["lead_id", "o_scoring_id", "occurred_at"]).join(
        scorings.select(["lead_id", "scoring_id", "scored_at"]),
        keys=["lead_id", "o_scoring_id"],
        right_keys=["lead_id", "scoring_id"],
        join_type="inner",
    )
    found = len(pc.unique(matches["lead_id"])) if matches.num_rows else 0
    eligible = matches.filter(pa.array(_eligible(matches, label_window))) if matches.num_rows else matches
    usable = len(pc.unique(eligible["lead_id"])) if eligible.num_rows else 0
    return naming.num_rows, naming.num_rows - found, found - usable


def _eligible(joined: pa.Table, label_window: timedelta) -> np.ndarray:
    """Rule 2: occurred_at - label window <= scored_at <= occurred_at."""
    scored = joined["scored_at"].cast(pa.int64()).to_numpy()
    occurred = joined["occurred_at"].cast(pa.int64()).to_numpy()
    window_us = int(label_window / timedelta(microseconds=1))
    return (scored <= occurred) & (scored >= occurred - window_us)


def attribute(scorings: pa.Table, labels: pa.Table, label_window: timedelta) -> pa.Table:
    """Per (lead, model version): the attributed scoring with the lead's label (rule at the top of this module)."""
    joined = scorings.join(labels, keys="lead_id", join_type="inner", use_threads=True)
    if joined.num_rows == 0:
        return joined
    joined = joined.filter(pa.array(_eligible(joined, label_window)))
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
