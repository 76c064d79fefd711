"""A generated CRM export for the batch tests: the synthetic population as the CRM types it, with planted bad rows.

`PLANTED` lists every problem planted, as (row, field, rule, value); the rejects must name exactly these.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hack.bench_batch import crm_table
from predictor.synthetic import sample_features

REPO = Path(__file__).resolve().parents[1]

# (row, field, rule, value as stored in the export)
PLANTED = [
    (3, "employee_count", "minimum", 0),
    (10, "industry", "enumeration", 99),
    (17, "web_visits_30d", "integer", 2.5),  # a count exported as a float column
    (25, "email_opens_30d", "required", None),
    (40, "pages_per_visit", "finite", math.inf),
    (55, "annual_revenue_musd", "maximum", 2e6),
    (60, "lead_id", "required", None),
    (70, "tech_fit_score", "minimum", -1.0),
    (70, "seniority", "enumeration", 7),
]
BAD_ROWS = sorted({r for r, *_ in PLANTED})
FLOAT_EXPORTED = {"web_visits_30d"}


def crm_export(
    n: int = 2_000, seed: int = 5, planted: bool = True, first_id: int = 0
) -> tuple[pa.Table, np.ndarray]:
    """The export and the clean feature matrix it was made from (rows in BAD_ROWS are the planted ones)."""
    x = sample_features(n, seed=seed)
    table = crm_table(x, first_id=first_id)
    if not planted:
        return table, x
    for name in FLOAT_EXPORTED:
        table = table.set_column(
            table.schema.get_field_index(name), name, table.column(name).cast(pa.float64())
        )
    for row, field, _, value in PLANTED:
        index = table.schema.get_field_index(field)
        column = table.column(index)
        values = column.to_pylist()
        values[row] = value
        table = table.set_column(index, field, pa.array(values, column.type))
    return table, x


def valid_rows(n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[BAD_ROWS] = False
    return mask


def write_csv(table: pa.Table, path: Path) -> None:
    """As a CRM writes CSV: flags as true/false, missing as empty cells."""
    pacsv.write_csv(table, path)


def _batch_env(env: dict | None) -> dict:
    import os

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("BATCH_DEBUG", None)
    return full_env


def start_batch(*args: str, text: bool = True) -> subprocess.Popen:
    """`python -m batch` running in the background (to kill, stop or race it), its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "batch", "--progress", "none", *args],
        cwd=REPO,
        env=_batch_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
    )


def run_batch(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = _batch_env(env)
    return subprocess.run(
        [sys.executable, "-m", "batch", "--progress", "none", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
