"""Scale check of the quality loop: outcome ingestion and the join job, on a file lake of the real layout.

    python -m hack.bench_quality [--scorings 10000000] [--outcomes 1000000] [--dir /tmp/bench-lake]

Not a test. Writes `--scorings` scoring rows (schema v2, no feature columns — the job reads none — in files of 5,000
rows like the transformer's, over 30 days, each lead scored twice), loads `--outcomes` outcomes from a CSV with
`quality.backfill` (every row validated, through the outcomes sink), then runs the job's measure step and prints
rows/s for both; with an artifact (--model-dir) it first measures POST /v1/outcomes on a real transformer. Population: the synthetic scores carry signal (AUC ≈ 0.75) so the measures are not degenerate.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from quality.attribution import Window
from quality.backfill import load
from quality.lake import Lake
from quality.report import measure
from transformer.sink.layout import partition_path
from transformer.sink.schema import SCHEMA_VERSION, lake_schema

FILE_ROWS = 5000
LEADS_PER_REQUEST = 50
TIER_CUTS = np.array([0.03, 0.06, 0.12, 0.25], dtype=np.float32)


def write_scorings(
    root: Path, total: int, end: datetime, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (lead index, score) of every row, for drawing outcomes with signal."""
    schema = lake_schema((), include_features=False)
    leads = total // 2
    lead_of_row = np.concatenate([rng.permutation(leads), rng.permutation(leads)])[:total]
    latent = rng.normal(size=leads)
    score_of_row = (1 / (1 + np.exp(-(-2.6 + 1.2 * latent[lead_of_row] + rng.normal(0, 0.4, total))))).astype(
        np.float32
    )
    seconds = np.sort(rng.uniform(0, 30 * 86400, total))
    start = end - timedelta(days=30)
    hours = ((start.timestamp() + seconds) // 3600).astype(np.int64)
    for first in range(0, total, FILE_ROWS):
        part = slice(first, min(first + FILE_ROWS, total))
        n = part.stop - part.start
        requests = (n + LEADS_PER_REQUEST - 1) // LEADS_PER_REQUEST
        sids = [str(uuid.uuid4()) for _ in range(requests)]
        per_row = np.repeat(np.arange(requests), LEADS_PER_REQUEST)[:n]
        scores = score_of_row[part]
        buckets = (np.searchsorted(TIER_CUTS, scores, side="right") + 1).astype(np.int8)
        micros = ((start.timestamp() + seconds[part]) * 1e6).astype(np.int64)
        table = pa.Table.from_arrays(
            [
                pa.array(sids).take(pa.array(per_row)),
                pa.array(sids).take(pa.array(per_row)),
                pa.array((np.arange(n) % LEADS_PER_REQUEST).astype(np.int32)),
                pc.binary_join_element_wise("lead-", pc.cast(pa.array(lead_of_row[part]), pa.string()), ""),
                pa.array(micros).cast(pa.timestamp("us", tz="UTC")),
                pa.array(["lead-scoring"] * n),
                pa.array(["bench-v1"] * n),
                pa.array(scores),
                pa.array(buckets),
                pa.array(np.array(list("EDCBA"))[buckets - 1]),
                pa.array(["bench"] * n),
                pa.array(["rest"] * n),
                pa.array(["v1_instances"] * n),
                pa.array(np.full(n, 2.0, np.float32)),
                pa.array(np.full(n, SCHEMA_VERSION, np.int16)),
            ],
            schema=schema,
        )
        # One file per (first hour of the file): close enough to the sink's hour partitions for a scale test.
        folder = root / partition_path("lead-scoring", int(hours[part.start]))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"bench-{first:09d}.parquet", compression="zstd")
    return lead_of_row, score_of_row


def write_outcomes_csv(path: Path, count: int, lead_of_row, score_of_row, end: datetime, rng) -> None:
    # Rows of the first half: there every lead appears once, so the outcomes are of `count` distinct leads.
    rows = rng.choice(len(lead_of_row) // 2, size=count, replace=False)
    converted = rng.random(count) < score_of_row[rows]
    iso = (end - timedelta(days=1)).isoformat()  # after every scoring of the 30 days
    table = pa.table(
        {
            "lead_id": pc.binary_join_element_wise(
                "lead-", pc.cast(pa.array(lead_of_row[rows]), pa.string()), ""
            ),
            "outcome": pa.array(np.where(converted, "converted", "disqualified")),
            "occurred_at": pa.array([iso] * count),
        }
    )
    pcsv.write_csv(table, path)


def bench_route(model_dir: Path, calls: int = 200, per_call: int = 1000) -> None:
    """Outcomes/s through POST /v1/outcomes of a real transformer process (in-process booster, file lake)."""
    import httpx

    from hack.stack import start_transformer

    with tempfile.TemporaryDirectory(prefix="bench-outcomes-") as folder:
        work = Path(folder)
        server = start_transformer(
            model_dir,
            work / "logs",
            api_keys="bench:bench-key",
            extra_args=[
                "--outcomes_uri",
                (work / "lake").as_uri(),
                "--outcomes_spool_dir",
                str(work / "spool"),
                "--enable_latency_logging",
                "false",
            ],
        )
        try:
            server.wait_ready()
            day = datetime.now(UTC) - timedelta(days=1)
            bodies = [
                {
                    "outcomes": [
                        {
                            "lead_id": f"lead-{c}-{i}",
                            "outcome": "converted" if i % 9 == 0 else "disqualified",
                            "occurred_at": (day + timedelta(seconds=i)).isoformat(),
                        }
                        for i in range(per_call)
                    ]
                }
                for c in range(calls)
            ]
            with httpx.Client(base_url=server.url, headers={"x-api-key": "bench-key"}, timeout=30) as http:
                started = time.perf_counter()
                for body in bodies:
                    assert http.post("/v1/outcomes", json=body).status_code == 200
                seconds = time.perf_counter() - started
        finally:
            server.stop()
        print(
            f"outcome ingestion (POST /v1/outcomes, {per_call} per call, one client): {calls * per_call:,} outcomes "
            f"in {seconds:.1f} s = {calls * per_call / seconds:,.0f} outcomes/s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hack.bench_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scorings", type=int, default=10_000_000)
    parser.add_argument("--outcomes", type=int, default=1_000_000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="lake folder (default: a temporary one, removed)"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("predictor/model"),
        help="artifact for the route benchmark (skipped when absent)",
    )
    args = parser.parse_args(argv)
    if (args.model_dir / "model-card.yaml").is_file():
        bench_route(args.model_dir)
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    rng = np.random.default_rng(15)
    end = datetime.now(UTC).replace(microsecond=0)
    try:
        started = time.perf_counter()
        lead_of_row, score_of_row = write_scorings(
            root, args.scorings, end - timedelta(days=1, seconds=1), rng
        )
        print(f"wrote {args.scorings:,} scoring rows in {time.perf_counter() - started:.1f} s")
        export = root.parent / f"{root.name}-outcomes.csv"
        write_outcomes_csv(export, args.outcomes, lead_of_row, score_of_row, end, rng)
        started = time.perf_counter()
        done = load(export, root.as_uri() + "/_outcomes")
        seconds = time.perf_counter() - started
        print(
            f"outcome ingestion (quality.backfill, validated + spooled + stored): {done['recorded']:,} outcomes in "
            f"{seconds:.1f} s = {done['recorded'] / seconds:,.0f} outcomes/s"
        )
        export.unlink()
        window = Window(
            since=end - timedelta(days=30), until=end + timedelta(minutes=1), label_window=timedelta(days=90)
        )
        result = measure(Lake(root.as_uri()), window)
        overall = next(r for r in result.rows if r["tier"] == "all")
        print(
            f"quality job (join + measure): {result.scoring_rows_read:,} scoring rows, {result.counts['outcomes']:,} "
            f"outcomes in {result.seconds:.1f} s = {result.scoring_rows_read / result.seconds:,.0f} scoring rows/s; "
            f"{overall['labelled_leads']:,} labelled leads, AUC {overall['auc']:.3f}"
        )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
