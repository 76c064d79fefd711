"""pyarrow as the data lake uses it: Arrow arrays and Parquet, without pyarrow's pandas interop.

The first conversion pyarrow makes (`pa.array`, `pa.table`, …) looks for pandas, imports it if it is installed and
remembers the answer. kserve installs pandas, so the first lake write would load it: ~35 MB of RSS, as much as
pyarrow itself, for DataFrame checks that can never match here (the lake builds its columns from numpy arrays and
lists). So that first look happens once, here, while an import of pandas fails as if it were not installed
(transformer/without_pandas.py). It changes nothing when pandas is already loaded, and an explicit `to_pandas()`
would still import it, since pyarrow retries when pandas is required rather than optional.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from transformer.without_pandas import pandas_unimportable

with pandas_unimportable():
    pa.array([], type=pa.int8())  # pyarrow's first conversion: where it looks for pandas

__all__ = ["pa", "pq"]
