"""Import KServe without the optional extras its dependencies load only because they happen to be installed.

* pandas (imported by kserve) imports pyarrow at import time whenever pyarrow is installed (`pandas.compat.pyarrow`);
  pyarrow is here for the data lake's Parquet writer, which imports it itself when a sink is configured.
* kubernetes' kube-config loader (imported by `kserve.api`) imports google-auth when present; it is installed here for
  kserve-storage's gs:// downloads, which import it themselves.
* `kubernetes.dynamic` imports kubernetes-validate when present (a dev dependency of this project's tests).
* `import httpx` (kserve's REST client) imports its command-line client, and with it pygments and rich, when both
  are present: here they come with dev tools (bandit, pip-audit, schemathesis), not with the runtime image, and
  cost ~50 ms of every start in the dev venv that `make serve` and `make bench` run from.
A transformer uses none of these through kserve — no pandas/Arrow interop, no Kubernetes client — yet together they
cost ~45 MB of RSS and ~0.14 s of start-up CPU (docs/performance.md, "Where the memory and start-up time go").
While kserve is imported they are hidden the way Python itself reports a missing module (`sys.modules[name] = None`
makes `import name` raise ImportError, which each of these importers catches); afterwards they are importable again, so
the sink's `import pyarrow` works as usual. The libraries that imported them simply behave as if the extra were not
installed, as they do in a stock KServe image.

pandas is different: kserve imports it unconditionally (`kserve.protocol.infer_type`, `kserve.utils.utils`) and
uses it only to turn tensors into DataFrames, which this transformer never asks for — yet it is ~35 MB of RSS, more
than the whole data lake's Arrow writer. So kserve's two modules get a stand-in that imports the real pandas the
first time they touch it (`_PandasOnFirstUse`). At import time those modules read only `pd.DataFrame`, in return
annotations, which get a placeholder class. Once kserve is in, the stand-in leaves `sys.modules`: any other importer
of pandas gets the real one (the server has none; its booster is xgboost's C library, transformer/native_xgboost.py),
and kserve's next `pd.<name>` then finds it loaded.

`kserve.KServeClient`, the Kubernetes API client for managing InferenceServices, is the same story: kserve's
`__init__` imports it, and with it the kubernetes package (~0.1 s of every start, ~7 MB of RSS), though a model
server never calls it. While kserve is imported, `kserve.api.kserve_client` is a stand-in whose `KServeClient`
imports the real module the first time one is built, and returns a real client; afterwards the module itself
imports as usual.
"""

from __future__ import annotations

import importlib
import sys
import types

OPTIONAL_EXTRAS = ("pyarrow", "google.auth", "kubernetes_validate", "pygments")
# Names kserve's modules read from pandas while they are being imported (return annotations); nothing else.
_READ_AT_IMPORT = ("DataFrame",)
_CLIENT_MODULE = "kserve.api.kserve_client"


class _PandasOnFirstUse(types.ModuleType):
    """What `import pandas as pd` binds inside kserve: every attribute but the import-time placeholders comes from
    the real pandas, imported on the first such access."""

    def __getattr__(self, name: str):
        if sys.modules.get("pandas") is self:
            del sys.modules["pandas"]  # let the import below find the real package
        return getattr(importlib.import_module("pandas"), name)


class _KServeClientOnFirstUse:
    """`kserve.KServeClient` in this process: building one imports the real class and returns an instance of it."""

    def __new__(cls, *args, **kwargs):
        from kserve.api.kserve_client import KServeClient

        return KServeClient(*args, **kwargs)


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
    client_stand_in = None
    if "kserve" not in sys.modules and _CLIENT_MODULE not in sys.modules:
        client_stand_in = types.ModuleType(_CLIENT_MODULE)
        client_stand_in.KServeClient = _KServeClientOnFirstUse  # type: ignore[attr-defined]
        sys.modules[_CLIENT_MODULE] = client_stand_in
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
        if client_stand_in is not None and sys.modules.get(_CLIENT_MODULE) is client_stand_in:
            del sys.modules[_CLIENT_MODULE]
