"""pyarrow as the data lake uses it: Arrow arrays and Parquet, without pyarrow's pandas interop.

The first conversion pyarrow makes (`pa.array`, `pa.table`, …) looks for pandas, imports it if it is installed and
remembers the answer. kserve installs pandas, so the first lake write would load it: ~35 MB of RSS, as much as
pyarrow itself, for DataFrame checks that can never match here (the lake builds its columns from numpy arrays and
lists). So that first look happens once, here, while an import of pandas fails as if it were not installed. It
changes nothing when pandas is already loaded (in-process mode, where xgboost imports it), and an explicit
`to_pandas()` would still import it, since pyarrow retries when pandas is required rather than optional.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder

import pyarrow as pa
import pyarrow.parquet as pq


class _PandasIsNotInstalled(MetaPathFinder):
    """Answers an import of pandas the way Python does when it is not installed. (Not `sys.modules["pandas"] =
    None`: pyarrow's Cython import takes that None for the module.)"""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return None


def _look_for_pandas_while_hidden() -> None:
    if "pandas" in sys.modules:
        return
    blocker = _PandasIsNotInstalled()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([], type=pa.int8())
    finally:
        sys.meta_path.remove(blocker)


_look_for_pandas_while_hidden()

__all__ = ["pa", "pq"]
