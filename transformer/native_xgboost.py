"""The booster through xgboost's own C library, without importing its Python package.

The transformer needs four things from xgboost: load a model from bytes, score a float32 matrix, TreeSHAP
contributions for reason codes, and an error message when something is wrong. Its Python package brings these along
with scipy (imported unconditionally by `xgboost.core`), the sklearn and dask front ends and their imports: ~0.23 s
of every in-process cold start and ~39 MB of RSS on this machine (docs/performance.md, eleventh pass), while loading
`libxgboost.so` and the model takes ~12 ms. So the server calls the same C entry points the package calls, with the
same arguments, on the library the pinned package installed:

* the library is found by the package's own `libpath.find_lib_path`, loaded from its file so that the package's
  `__init__` (and with it scipy) never runs;
* it must report the package's version (`VERSION`), as the package itself insists;
* the model is loaded as kserve-xgbserver loads it (`Booster(model_file=bytearray(...))`: `XGBoosterLoadModelFromBuffer`,
  then `nthread`);
* scores come from `XGBoosterPredictFromDense`, which is what `inplace_predict` calls, through one long-lived proxy
  DMatrix: `inplace_predict` makes a proxy per call, and a new proxy's `Context` re-reads the cgroup CPU quota from
  /sys (~10-15 % of a one-lead call). What no caller can save in xgboost 2.1: every call re-initialises the proxy's
  `Context` (`DMatrixProxy::SetArrayData`), which compiles three `std::regex` to parse the device string "cpu", about
  2/3 of a ~210 µs one-lead call (docs/performance.md, twelfth pass). xgboost 3.0 and 3.4 removed it; the
  predictor's pin (`xgboost~=2.1.1`) keeps this project on 2.1, so request coalescing spreads the cost instead;
* contributions come from `XGBoosterPredictFromDMatrix` with prediction type 2, what `predict(pred_contribs=True)`
  sends.

tests/unit/test_native_xgboost.py holds every answer bit for bit against the Python package's.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import logging
import threading
from pathlib import Path

import numpy as np

from contract.model_card import find_booster

log = logging.getLogger("transformer.xgboost")

_ULONG = ctypes.c_uint64  # xgboost's bst_ulong
_VALUE, _CONTRIBUTIONS = 0, 2  # xgboost's PredictionType


class XGBoostError(RuntimeError):
    """An error xgboost's C library reported (its own message, from XGBGetLastError)."""


def _package_dir() -> Path:
    spec = importlib.util.find_spec("xgboost")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise XGBoostError("the xgboost package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _find_lib_path(package: Path) -> list[str]:
    """xgboost's own search for its library (`xgboost/libpath.py` imports nothing but os, platform and sys)."""
    spec = importlib.util.spec_from_file_location("_xgboost_libpath", package / "libpath.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.find_lib_path()


@ctypes.CFUNCTYPE(None, ctypes.c_char_p)
def _log_message(message: bytes) -> None:
    # Without a callback the library writes to stderr, outside the JSON log lines.
    log.warning("xgboost: %s", message.decode(errors="replace").strip())


@functools.cache
def library() -> ctypes.CDLL:
    package = _package_dir()
    lib = ctypes.cdll.LoadLibrary(_find_lib_path(package)[0])
    lib.XGBGetLastError.restype = ctypes.c_char_p
    _check(lib, lib.XGBRegisterLogCallback(_log_message))
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.XGBoostVersion(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    found = f"{major.value}.{minor.value}.{patch.value}"
    expected = (package / "VERSION").read_text(encoding="ascii").strip().split("-")[0]
    if found != expected:
        raise XGBoostError(f"libxgboost is {found} but the xgboost package is {expected}: reinstall xgboost")
    return lib


def _check(lib: ctypes.CDLL, status: int) -> None:
    if status != 0:
        raise XGBoostError((lib.XGBGetLastError() or b"unknown error").decode(errors="replace"))


def _array_interface(matrix: np.ndarray) -> bytes:
    return json.dumps(
        {
            "data": [matrix.ctypes.data, True],
            "shape": list(matrix.shape),
            "strides": None,
            "typestr": "<f4",
            "version": 3,
        }
    ).encode()


def _prediction_config(kind: int) -> bytes:
    # What the Python package sends for the whole model, not training, missing = NaN.
    return json.dumps(
        {
            "type": kind,
            "training": False,
            "iteration_begin": 0,
            "iteration_end": 0,
            "missing": float("nan"),
            "strict_shape": False,
            "cache_id": 0,
        }
    ).encode()


class NativeBooster:
    """One loaded model: `predict` is `inplace_predict(matrix, missing=nan)`, `contributions` is
    `predict(DMatrix(matrix, missing=nan), pred_contribs=True)`. Both are safe to call from several threads."""

    def __init__(self, model: bytes, nthread: int = 1):
        self._lib = lib = library()
        self._nthread = nthread
        self._handle = ctypes.c_void_p()
        _check(lib, lib.XGBoosterCreate(None, _ULONG(0), ctypes.byref(self._handle)))
        try:
            _check(lib, lib.XGBoosterLoadModelFromBuffer(self._handle, model, _ULONG(len(model))))
            _check(lib, lib.XGBoosterSetParam(self._handle, b"nthread", str(nthread).encode()))
            self._proxy = ctypes.c_void_p()
            _check(lib, lib.XGProxyDMatrixCreate(ctypes.byref(self._proxy)))
        except BaseException:
            lib.XGBoosterFree(self._handle)
            self._handle = ctypes.c_void_p()
            raise
        # The proxy is shared state; the result buffer is xgboost's, per thread, until that thread's next call.
        self._proxy_lock = threading.Lock()
        self._value_config = _prediction_config(_VALUE)
        self._contributions_config = _prediction_config(_CONTRIBUTIONS)
        self._matrix_config = json.dumps(
            {"missing": float("nan"), "nthread": nthread, "data_split_mode": 0}
        ).encode()

    @classmethod
    def from_model_dir(cls, folder: Path, nthread: int = 1) -> NativeBooster:
        """The folder's one booster file, found by kserve-xgbserver's rule (`model_card.find_booster`)."""
        return cls(find_booster(folder).read_bytes(), nthread)

    @functools.cached_property
    def num_features(self) -> int:
        count = _ULONG()
        _check(self._lib, self._lib.XGBoosterGetNumFeature(self._handle, ctypes.byref(count)))
        return count.value

    @functools.cached_property
    def objective(self) -> str:
        """The objective the booster was trained with, from its own JSON configuration (XGBoosterSaveJsonConfig,
        what the Python package's Booster.save_config() returns), not from a card that only says what it was told."""
        length, text = _ULONG(), ctypes.c_char_p()
        _check(
            self._lib,
            self._lib.XGBoosterSaveJsonConfig(self._handle, ctypes.byref(length), ctypes.byref(text)),
        )
        return str(json.loads(ctypes.string_at(text, length.value))["learner"]["objective"]["name"])

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores [N] float32 for a [N, F] matrix (any float dtype or layout; read as float32)."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        interface = _array_interface(matrix)
        with self._proxy_lock:
            proxy = self._proxy or None  # after close(): a proxy per call, as inplace_predict makes
            return self._call(self._lib.XGBoosterPredictFromDense, interface, self._value_config, proxy)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP [N, F + 1] float32: one log-odds contribution per feature, then the bias."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.num_features:
            # xgboost's own check here is an internal assertion about buffer sizes; say what is wrong instead.
            raise XGBoostError(f"expected a [N, {self.num_features}] matrix, got shape {list(matrix.shape)}")
        data = ctypes.c_void_p()
        _check(
            self._lib,
            self._lib.XGDMatrixCreateFromDense(
                _array_interface(matrix), self._matrix_config, ctypes.byref(data)
            ),
        )
        try:
            return self._call(self._lib.XGBoosterPredictFromDMatrix, data, self._contributions_config)
        finally:
            self._lib.XGDMatrixFree(data)

    def _call(self, entry, *args) -> np.ndarray:
        shape, dims, result = ctypes.POINTER(_ULONG)(), _ULONG(), ctypes.POINTER(ctypes.c_float)()
        _check(
            self._lib,
            entry(self._handle, *args, ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(result)),
        )
        dimensions = tuple(int(shape[i]) for i in range(dims.value))
        values = np.ctypeslib.as_array(result, shape=(int(np.prod(dimensions)),)).copy()
        return values.reshape(dimensions) if len(dimensions) > 1 else values

    def close(self) -> None:
        """Frees the proxy; the model itself is freed with the object."""
        with self._proxy_lock:
            if self._proxy:
                _check(self._lib, self._lib.XGDMatrixFree(self._proxy))
                self._proxy = ctypes.c_void_p()

    def __del__(self) -> None:
        # Also runs after a failed __init__, with only some attributes set.
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        proxy, handle = getattr(self, "_proxy", None), getattr(self, "_handle", None)
        if proxy:
            lib.XGDMatrixFree(proxy)
        if handle:
            lib.XGBoosterFree(handle)
