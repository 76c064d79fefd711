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
"""

from __future__ import annotations

import sys

OPTIONAL_EXTRAS = ("pyarrow", "google.auth", "kubernetes_validate")


def import_kserve() -> None:
    hidden = [name for name in OPTIONAL_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import kserve  # noqa: F401
        import kserve.model_server  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
