"""Batch scoring throughput on one core: Parquet in → Parquet out with full validation and tiers, against the bare
booster (xgboost's in-place prediction, transformer/native_xgboost.py) on the same float32 matrix, plus the peak RSS
of a 10 M-row input.

    python -m hack.bench_batch --model-dir predictor/model [--rows 2000000] [--big-rows 10000000]

Everything is generated into a temporary folder and deleted afterwards. Each measurement runs `python -m batch` in
a child process pinned to one CPU (taskset when available) with xgboost's nthread=1, so the numbers are per core.
The machine may be shared: run it on an idle machine for numbers you quote; the rates printed are best of `--repeat`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contract.features import FEATURE_NAMES, FEATURES
from predictor.synthetic import sample_features

ROOT = Path(__file__).resolve().parents[1]
_ARROW_TYPE = {"float": pa.float64(), "int": pa.int64(), "category": pa.int8(), "bool": pa.bool_()}


def crm_table(x: np.ndarray, first_id: int = 0) -> pa.Table:
    """A CRM export as the CRM would type it: ints as int64, codes as int8, flags as booleans, nulls for missing."""
    columns = {"lead_id": pa.array([f"L{first_id + i:010d}" for i in range(len(x))])}
    for j, spec in enumerate(FEATURES):
        values = x[:, j]
        mask = np.isnan(values)
        kind = _ARROW_TYPE[spec.kind]
        if spec.kind == "float":
            columns[spec.name] = pa.array(values, kind, mask=mask)
        elif spec.kind == "bool":
            columns[spec.name] = pa.array(np.nan_to_num(values) != 0, kind, mask=mask)
        else:
            columns[spec.name] = pa.array(np.nan_to_num(values).astype(np.int64), pa.int64(), mask=mask).cast(
                kind
            )
    return pa.table(columns)


def write_export(
    path: Path, rows: int, seed: int = 11, chunk: int = 500_000, row_group: int = 250_000
) -> None:
    """Written in chunks so generating a 10 M-row file does not itself need the file's size in memory."""
    writer = None
    try:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            table = crm_table(sample_features(n, seed=seed + start), first_id=start)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=row_group)
    finally:
        if writer:
            writer.close()


def _pin() -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0"] if taskset else []


def run_batch(model_dir: Path, source: Path, out: Path) -> tuple[float, dict]:
    """Wall seconds and the shard's JSON line (CPU seconds, peak RSS as the process itself reads it from /proc)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run(
        [
            *_pin(),
            sys.executable,
            "-m",
            "batch",
            "--input",
            str(source),
            "--output",
            str(out),
            "--model",
            str(model_dir),
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"batch failed: {result.stderr}")
    done = [json.loads(line) for line in result.stdout.splitlines() if '"shard_done"' in line][0]
    return seconds, done


_BARE = """
import sys, time, numpy as np, pyarrow.parquet as pq
from contract.features import FEATURE_NAMES
from transformer.predictors.inprocess import InProcessBooster
from pathlib import Path
booster = InProcessBooster(Path(sys.argv[1]), nthread=1).booster
table = pq.read_table(sys.argv[2], columns=list(FEATURE_NAMES))
x = np.column_stack([table.column(n).cast("float64").to_numpy() for n in FEATURE_NAMES]).astype(np.float32)
started, cpu = time.perf_counter(), time.process_time()
for i in range(0, len(x), 16384):
    booster.predict(x[i:i + 16384])
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def bare_predict_seconds(model_dir: Path, source: Path) -> tuple[float, float]:
    """Wall and CPU seconds of inplace_predict alone over the export's float32 matrix, in the batch's windows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [*_pin(), sys.executable, "-c", _BARE, str(model_dir), str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall, cpu = result.stdout.split()
    return float(wall), float(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "predictor" / "model")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the throughput input")
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="rows of the RSS input (0: skip)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--write-export",
        type=Path,
        metavar="PATH",
        help="only write a sample CRM export of --rows leads to PATH (Parquet) and exit",
    )
    args = parser.parse_args(argv)
    if args.write_export:
        args.write_export.parent.mkdir(parents=True, exist_ok=True)
        write_export(args.write_export, args.rows)
        print(f"wrote {args.rows:,} leads to {args.write_export}")
        return 0
    if len(FEATURE_NAMES) != 50:
        raise SystemExit("feature contract changed")
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        source = scratch / "export.parquet"
        write_export(source, args.rows)
        runs = [run_batch(args.model_dir, source, scratch / f"out-{i}") for i in range(args.repeat)]
        bare = [bare_predict_seconds(args.model_dir, source) for _ in range(args.repeat)]
        wall = min(r[0] for r in runs)
        shard_wall = min(r[1]["seconds"] for r in runs)
        shard_cpu = min(r[1]["cpu_seconds"] for r in runs)
        bare_wall, bare_cpu = min(b[0] for b in bare), min(b[1] for b in bare)
        n = args.rows
        print(
            f"input: {n:,} leads, Parquet ({source.stat().st_size / 2**20:,.0f} MiB); 1 core (taskset), nthread=1"
        )
        print(
            f"python -m batch, whole process (start, model load, plan, score, commit): {wall:.2f} s wall "
            f"= {n / wall * 60:,.0f} leads/min"
        )
        print(
            f"  scoring loop (read, validate, score, tier, write, commit): {shard_wall:.2f} s wall, "
            f"{shard_cpu:.2f} s CPU = {n / shard_cpu * 60:,.0f} leads per CPU-minute"
        )
        print(
            f"bare booster predict on the same float32 matrix: {bare_wall:.2f} s wall, {bare_cpu:.2f} s CPU "
            f"= {n / bare_cpu * 60:,.0f} leads per CPU-minute"
        )
        print(
            f"overhead over bare predict: {shard_cpu / bare_cpu:.2f}x CPU, {shard_wall / bare_wall:.2f}x wall "
            f"(whole process: {wall / bare_wall:.2f}x wall)"
        )
        if args.big_rows:
            big = scratch / "big.parquet"
            write_export(big, args.big_rows)
            seconds, done = run_batch(args.model_dir, big, scratch / "out-big")
            print(
                f"{args.big_rows:,} rows ({big.stat().st_size / 2**20:,.0f} MiB Parquet): {seconds:.1f} s wall, "
                f"{done['cpu_seconds']:.1f} s CPU, peak RSS {done['peak_rss_mib']:,.0f} MiB "
                f"({args.rows:,} rows: {runs[0][1]['peak_rss_mib']:,.0f} MiB) — bounded by the window, not the file"
            )
        print(
            "note: the machine may be shared with other work; rates are best of "
            f"{args.repeat} and still noisy"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
