"""Import a library as if pandas were not installed, for libraries that take pandas only when it is there.

kserve installs pandas (~35 MB of RSS, ~0.3 s of CPU to import), and pandas imports pyarrow (~30 MB) as soon as it
is imported itself. pyarrow looks for pandas once, remembers the answer, and uses it only for DataFrame input or
output, which the transformer never asks of it. Hiding pandas while it looks keeps it out of the process; it
changes nothing once pandas is loaded, and a later `import pandas` works as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder


class _PandasIsNotInstalled(MetaPathFinder):
    """Answers an import of pandas the way Python does when it is not installed. (Not `sys.modules["pandas"] =
    None`: pyarrow's Cython import takes that None for the module.)"""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return None


@contextmanager
def pandas_unimportable() -> Iterator[None]:
    if "pandas" in sys.modules:
        yield
        return
    blocker = _PandasIsNotInstalled()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)
