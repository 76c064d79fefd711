"""`python -m quality.backfill <file.csv|file.parquet> --lake <uri>`: bulk outcomes from a CRM export.

Columns: lead_id, outcome, occurred_at (ISO 8601 with a zone, or a Parquet timestamp), and optionally deal_value,
scoring_id, request_id — the same contract as POST /v1/outcomes (contract/outcomes.py). Every row is validated;
if any is bad, every bad row is listed (row = 0-based data row, field, rule) and nothing is written (exit 2), so a
fixed file can simply be loaded again. Good files go through the outcomes sink — the same spool, fsync, retries and
never-overwrite writers as the transformer — and are idempotent: outcome_id dedupes repeats in the file and in the lake.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from contract.outcomes import check_outcomes, outcome_key
from quality.lake import OUTCOMES_PREFIX, child_uri
from transformer.ids import new_scoring_id
from transformer.sink import SinkConfig
from transformer.sink.outcomes import OutcomeBatch, outcome_sink, utc_day

COLUMNS = ("lead_id", "outcome", "occurred_at", "deal_value", "scoring_id", "request_id")
CHUNK = 50_000


class BackfillError(ValueError):
    pass


def read_rows(path: Path) -> list[dict]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    elif path.suffix == ".csv":
        # Everything as text: the contract parses it exactly as it parses JSON, so both ways in agree.
        names = pcsv.read_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16)).column_names
        table = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, "string"), strings_can_be_null=True
            ),
        )
    else:
        raise BackfillError(f"{path}: expected a .csv or .parquet file")
    unknown = [c for c in table.column_names if c not in COLUMNS]
    missing = [c for c in ("lead_id", "outcome", "occurred_at") if c not in table.column_names]
    if unknown or missing:
        raise BackfillError(
            f"{path}: "
            + "; ".join(
                ([f"missing column(s): {', '.join(missing)}"] if missing else [])
                + (
                    [f"unknown column(s): {', '.join(unknown)} (allowed: {', '.join(COLUMNS)})"]
                    if unknown
                    else []
                )
            )
        )
    rows = table.to_pylist()
    # An empty cell means "not given", like an absent JSON field (so an empty lead_id is `required`).
    return [{k: v for k, v in row.items() if not (v is None or v == "")} for row in rows]


def load(
    path: Path,
    outcomes_uri: str,
    *,
    spool_dir: Path | None = None,
    s3_endpoint_url: str | None = None,
    azure_connection_string: str | None = None,
    grace_seconds: float = 120.0,
) -> dict:
    rows = read_rows(path)
    valid, problems, total = check_outcomes(rows, max_reported=len(rows) * 8 + 1)
    if total:
        raise BackfillError(
            f"{path}: {total} problem(s) in {len({p['row'] for p in problems})} row(s); nothing was "
            "written:\n"
            + "\n".join(
                f"  row {p['row']}: field {p['field']}: rule {p['rule']}: {p['message'].split(': ', 1)[-1]}"
                for p in problems
            )
        )
    received_at = datetime.now(UTC)
    by_day: dict[str, dict[str, int]] = {}
    for i, outcome in enumerate(valid):
        by_day.setdefault(utc_day(outcome.occurred_at), {}).setdefault(
            outcome_key(outcome.lead_id, outcome.outcome, outcome.occurred_at), i
        )
    owned = spool_dir is None
    spool = spool_dir or Path(tempfile.mkdtemp(prefix="outcomes-backfill-"))
    sink = outcome_sink(
        SinkConfig(
            uri=outcomes_uri,
            spool_dir=spool,
            flush_records=CHUNK,
            flush_seconds=3600,
            queue_max_records=len(valid) + 1,
            spool_max_bytes=1 << 40,
            s3_endpoint_url=s3_endpoint_url,
            azure_connection_string=azure_connection_string,
        )
    )
    request_id = new_scoring_id()
    recorded = 0
    for day_rows in by_day.values():
        chosen = list(day_rows.items())
        for start in range(0, len(chosen), CHUNK):
            part = chosen[start : start + CHUNK]
            items = [valid[i] for _, i in part]
            sink.submit(
                OutcomeBatch(
                    request_id=request_id,
                    received_at=received_at,
                    source="backfill",
                    api_key_name="backfill",
                    lead_ids=[o.lead_id for o in items],
                    outcomes=[o.outcome for o in items],
                    occurred_at=[o.occurred_at for o in items],
                    outcome_ids=[k for k, _ in part],
                    deal_values=[o.deal_value for o in items],
                    scoring_ids=[o.scoring_id for o in items],
                    request_ids=[o.request_id for o in items],
                )
            )
            recorded += len(part)
    sink.close(grace_seconds=grace_seconds)  # spool, then upload with retries until stored or the grace ends
    left = sink.spool.pending()
    if left:
        raise BackfillError(
            f"{len(left)} file(s) could not be uploaded within {grace_seconds:.0f} s; they are kept in "
            f"{spool}: run again with --spool-dir {spool} to upload them (nothing is lost)"
        )
    if owned:
        for leftover in sorted(spool.rglob("*"), reverse=True):
            leftover.unlink() if leftover.is_file() else leftover.rmdir()
        spool.rmdir()
    return {"rows": len(rows), "recorded": recorded, "duplicates_in_file": len(valid) - recorded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quality.backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--lake", required=True, help="the transformer's --sink_uri; outcomes go to <lake>/_outcomes"
    )
    parser.add_argument("--outcomes-uri", default=None, help="the outcomes table, if not <lake>/_outcomes")
    parser.add_argument(
        "--spool-dir", type=Path, default=None, help="keep the spool here (resume an interrupted load)"
    )
    parser.add_argument("--s3-endpoint-url", default=None)
    parser.add_argument("--azure-connection-string", default=None)
    parser.add_argument("--grace-seconds", type=float, default=120.0, help="how long uploads are retried")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        done = load(
            args.file,
            args.outcomes_uri or child_uri(args.lake, OUTCOMES_PREFIX),
            spool_dir=args.spool_dir,
            s3_endpoint_url=args.s3_endpoint_url,
            azure_connection_string=args.azure_connection_string
            or os.environ.get("AZURE_STORAGE_CONNECTION_STRING"),
            grace_seconds=args.grace_seconds,
        )
    except (BackfillError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(
        f"backfill: {done['rows']:,} rows, {done['recorded']:,} outcomes recorded, {done['duplicates_in_file']:,} "
        f"repeats skipped, in {seconds:.1f} s ({done['rows'] / seconds:,.0f} rows/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
