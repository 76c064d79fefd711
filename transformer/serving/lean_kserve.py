"""Import KServe without the optional extras its dependencies load only because they happen to be installed.

* pandas (imported by kserve) imports pyarrow at import time whenever pyarrow is installed (`pandas.compat.pyarrow`);
  pyarrow is here for the data lake's Parquet writer, which imports it itself when a sink is configured.
* kubernetes' kube-config loader (imported by `kserve.api`) imports google-auth when present; it is installed here for
  kserve-storage's gs:// downloads, which import it themselves.
* `kubernetes.dynamic` imports kubernetes-validate when present (a dev dependency of this project's tests).
A transformer uses none of these through kserve — no pandas/Arrow interop, no Kubernetes client — yet together they
cost ~45 MB of RSS and ~0.14 s of start-up CPU (docs/performance.md, "Where the memory and start-up time go").
While kserve is imported they are hidden the way Python itself reports a missing module (`sys.modules[name] = None`
makes `import name` raise ImportError, which all three importers catch); afterwards they are importable again, so
the sink's `import pyarrow` works as usual. The libraries that imported them simply behave as if the extra were not
installed, as they do in a stock KServe image.

pandas is different: kserve imports it unconditionally (`kserve.protocol.infer_type`, `kserve.utils.utils`) and
uses it only to turn tensors into DataFrames, which this transformer never asks for — yet it is ~35 MB of RSS, more
than the whole data lake's Arrow writer. So kserve's two modules get a stand-in that imports the real pandas the
first time they touch it (`_PandasOnFirstUse`). At import time those modules read only `pd.DataFrame`, in return
annotations, which get a placeholder class. Once kserve is in, the stand-in leaves `sys.modules`: any other importer
of pandas gets the real one (xgboost is imported without it: transformer/lean_xgboost.py), and kserve's next
`pd.<name>` then finds it loaded.
"""

from __future__ import annotations

import importlib
import sys
import types

OPTIONAL_EXTRAS = ("pyarrow", "google.auth", "kubernetes_validate")
# Names kserve's modules read from pandas while they are being imported (return annotations); nothing else.
_READ_AT_IMPORT = ("DataFrame",)


class _PandasOnFirstUse(types.ModuleType):
    """What `import pandas as pd` binds inside kserve: every attribute but the import-time placeholders comes from
    the real pandas, imported on the first such access."""

    def __getattr__(self, name: str):
        if sys.modules.get("pandas") is self:
            del sys.modules["pandas"]  # let the import below find the real package
        return getattr(importlib.import_module("pandas"), name)


def _placeholder(name: str) -> type:
    return type(
        name, (), {"__module__": "pandas", "__doc__": "Annotation placeholder; pandas is not loaded yet."}
    )


def import_kserve() -> None:
    hidden = [name for name in OPTIONAL_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    stand_in = None
    if "pandas" not in sys.modules:
        stand_in = _PandasOnFirstUse("pandas")
        for name in _READ_AT_IMPORT:
            setattr(stand_in, name, _placeholder(name))
        sys.modules["pandas"] = stand_in
    try:
        import kserve  # noqa: F401
        import kserve.model_server  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
        if stand_in is not None:
            for name in _READ_AT_IMPORT:
                vars(stand_in).pop(name, None)  # from now on pd.DataFrame is the real one
            if sys.modules.get("pandas") is stand_in:
                del sys.modules["pandas"]
