"""A Python environment holding KServe and its own dependencies only, for the stock peers (a) and (b).

Why not the project's venv: what `import kserve` loads depends on what else is installed. kserve imports pandas, and
pandas imports pyarrow whenever pyarrow is installed (`pandas.compat.pyarrow`); the project's venv has pyarrow (the
data lake) and kubernetes-validate (tests), which `kubernetes.dynamic` also imports when present. In the project's
venv the stock transformer therefore starts ~45 MB heavier than the stock transformer a team would deploy from
`pip install kserve`. The RSS target compares against that deployed one, so the peers run from here.

Built once, on first use, with the project's pins (`requirements/constraints.txt`); kept under bench-results/ (ignored
by git). Delete the folder to rebuild.
"""

from __future__ import annotations

# subprocess runs venv and pip with argument lists we build (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
from importlib import metadata
from pathlib import Path

from hack.bench_peers.measure import BenchError
from hack.stack import ROOT

STOCK_VENV = ROOT / "bench-results" / "stock-venv"


def stock_python(venv: Path = STOCK_VENV) -> Path:
    version = metadata.version("kserve")  # the same KServe as ours
    python = venv / "bin" / "python"
    marker = venv / f".installed-kserve-{version}"
    if marker.exists():
        return python
    print(f"bench: building a KServe-only environment in {venv} (once, ~30 s)", flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "requirements" / "constraints.txt"),
            f"kserve=={version}",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)  # nosec B603
        if done.returncode != 0:
            raise BenchError(
                f"cannot build the stock KServe environment ({' '.join(step[:4])} …):\n"
                f"{done.stderr[-2000:]}\nuse --stock-env shared to run the peers from the project's venv"
            )
    marker.touch()
    return python
