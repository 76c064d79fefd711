"""xgboost as the transformer uses it: numpy in, numpy out, without pandas.

`import xgboost` imports pandas when it is installed (`xgboost.compat`, for DataFrame input), and pandas imports
pyarrow: +65 MB of RSS and ~0.4 s of start-up CPU in the in-process transformer, for input types it never passes
(docs/performance.md, eighth pass). Imported here, xgboost finds pandas missing and works on numpy exactly as
before. xgboost also tries `import pandas` each time it builds a DMatrix (to ask whether the data is a pandas
Series), so reason codes build theirs through `dmatrix`. Every xgboost use in the server goes through here (the
in-process booster, reason codes); the other consumers of `contract.model_card` (training, batch scoring, the
stand-in predictor) import it as usual.

Hiding pandas is process-wide while it lasts (an import hook): nothing in the server imports pandas, and a pandas
loaded earlier is simply used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from contract import model_card
from transformer.without_pandas import pandas_unimportable


def import_xgboost() -> ModuleType:
    if "xgboost" not in sys.modules:
        with pandas_unimportable():
            import xgboost  # noqa: F401
    return sys.modules["xgboost"]


def load_booster(model_dir: Path, nthread: int = 1):
    """`contract.model_card.load_booster`, with xgboost imported here first."""
    import_xgboost()
    return model_card.load_booster(model_dir, nthread)


def dmatrix(data: np.ndarray):
    """`xgboost.DMatrix(data, missing=nan)` without its per-construction look for pandas."""
    xgb = import_xgboost()
    with pandas_unimportable():
        return xgb.DMatrix(data, missing=np.nan)
