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
from quality import cli_args
from transformer.ids import new_scoring_id
from transformer.sink import SinkConfig
from transformer.sink.outcomes import OutcomeBatch, outcome_sink, utc_day

COLUMNS = ("lead_id", "outcome", "occurred_at", "deal_value", "scoring_id", "request_id")
CHUNK = 50_000


class BackfillError(ValueError):
    pass


def _csv_table(path: Path):
    """The CSV with every cell as text, exactly as written: only an empty cell is missing (Arrow would otherwise
    read NA, N/A, NULL, null, nan, #N/A … as missing: a lead called "NA" got rule `required`, a deal value "nan"
    vanished instead of being refused by rule `finite`)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if path.stat().st_size == 0:
        raise BackfillError(
            f"{path}: empty file: expected a header row naming the columns ({', '.join(COLUMNS)})"
        )
    ragged: list = []

    def invalid_row(row) -> str:
        ragged.append(row)
        return "error"

    # Serial, so Arrow numbers the rows (a bad row is named); the header alone tells the columns, inferring nothing.
    read_options = pcsv.ReadOptions(use_threads=False, block_size=1 << 20)
    parse_options = pcsv.ParseOptions(invalid_row_handler=invalid_row)

    def refused(exc: Exception) -> BackfillError:
        if ragged:
            row = ragged[0]
            where = (
                f"row {row.number - 2}" if row.number else "a row"
            )  # line 1 is the header; rows are 0-based
            return BackfillError(
                f"{path}: {where}: has {row.actual_columns} cell(s), the header names {row.expected_columns}"
            )
        return BackfillError(f"{path}: {str(exc).splitlines()[0]}")

    try:
        with pcsv.open_csv(
            path,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=pcsv.ConvertOptions(include_columns=[]),
        ) as header:
            names = header.schema.names
    except pa.ArrowInvalid as exc:
        raise refused(exc) from None
    except UnicodeDecodeError:
        raise BackfillError(
            f"{path}: header row: rule encoding: not UTF-8 text (save the export as UTF-8)"
        ) from None
    _refuse_duplicates(path, names)

    def read(kind: str):
        return pcsv.read_csv(
            path,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, kind), strings_can_be_null=False, null_values=[]
            ),
        )

    try:
        return read("string")
    except pa.ArrowInvalid as exc:
        if ragged or "UTF8" not in str(exc):
            raise refused(exc) from None
    # Not UTF-8 somewhere: read the bytes to say where (the contract's text is Unicode; re-save the export as UTF-8).
    raise _not_utf8(path, read("binary"))


def _not_utf8(path: Path, raw) -> BackfillError:
    """The first cell of `raw` (a CSV read as bytes) that is not UTF-8, by row and column."""
    import pyarrow as pa

    for name in raw.column_names:
        try:
            raw[name].cast(pa.string())
            continue
        except pa.ArrowInvalid:
            pass
        for number, cell in enumerate(raw[name].to_pylist()):
            try:
                cell.decode("utf-8")
            except UnicodeDecodeError:
                return BackfillError(
                    f"{path}: row {number}: field {name}: rule encoding: not UTF-8 text (save the export as UTF-8)"
                )
    return BackfillError(f"{path}: not UTF-8 text (save the export as UTF-8)")


def _refuse_duplicates(path: Path, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BackfillError(
            f"{path}: duplicate column(s): {', '.join(repeated)} (each column may appear once; which one "
            "would be meant?)"
        )


def read_rows(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        try:
            _refuse_duplicates(path, pq.read_schema(path).names)
            table = pq.read_table(path)
        except pa.ArrowException as exc:
            raise BackfillError(f"{path}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    elif path.suffix == ".csv":
        # Everything as text: the contract parses it exactly as it parses JSON, so both ways in agree.
        table = _csv_table(path)
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
    # A CSV's cells are all text; a Parquet file's numbers are numbers.
    valid, problems, total = check_outcomes(rows, max_reported=len(rows) * 8 + 1, text=path.suffix == ".csv")
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
            journal=False,  # the input file is the record until the run ends; no answer to protect
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
    cli_args.add_outcomes_uri(parser)
    parser.add_argument(
        "--spool-dir", type=Path, default=None, help="keep the spool here (resume an interrupted load)"
    )
    parser.add_argument("--s3-endpoint-url", default=None)
    parser.add_argument("--azure-connection-string", default=None)
    parser.add_argument(
        "--grace-seconds",
        type=cli_args.grace_seconds,
        default=120.0,
        help="how long uploads are retried (default 120; >= 0, at most 86,400)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        done = load(
            args.file,
            cli_args.outcomes_uri(args),
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
