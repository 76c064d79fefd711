"""In-process prediction through one long-lived proxy DMatrix.

`Booster.inplace_predict` has xgboost create a proxy DMatrix for every call, and each proxy builds a fresh
`Context`: it re-reads the cgroup CPU quota from /sys and parses the device string with `std::regex`. On this machine
that is ~50 µs of a ~200 µs single-row call (perf; docs/performance.md). The C API that `inplace_predict` calls,
`XGBoosterPredictFromDense`, takes an existing proxy as its `m` argument ("an optional proxy DMatrix"), so one is
created at load and reused. Same entry point, same configuration, same scores (tests/unit/test_dense_predict.py
compares them with `inplace_predict` bit for bit).

xgboost is pinned (pyproject.toml): `_LIB` and `_check_call` are its own ctypes handle and error check.
"""

from __future__ import annotations

import ctypes
import json
import threading

import numpy as np

from transformer.lean_xgboost import import_xgboost

xgb_core = import_xgboost().core

_ULONG = ctypes.c_uint64  # xgboost's bst_ulong


class DensePredictor:
    """`booster.inplace_predict(matrix, missing=nan)` for float32 [N, F] matrices, without the per-call proxy."""

    def __init__(self, booster) -> None:
        self._booster = booster
        self._proxy = ctypes.c_void_p()
        xgb_core._check_call(xgb_core._LIB.XGProxyDMatrixCreate(ctypes.byref(self._proxy)))
        # What inplace_predict sends for predict_type="value", the whole model, missing=NaN.
        self._config = json.dumps(
            {
                "type": 0,
                "training": False,
                "iteration_begin": 0,
                "iteration_end": 0,
                "missing": float("nan"),
                "strict_shape": False,
                "cache_id": 0,
            }
        ).encode()
        self._shape = ctypes.POINTER(_ULONG)()
        self._dims = _ULONG()
        self._result = ctypes.POINTER(ctypes.c_float)()
        # The proxy and the result pointers are shared state; xgboost's result buffer lives until the next call.
        self._lock = threading.Lock()

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        interface = json.dumps(
            {
                "data": [matrix.ctypes.data, True],
                "shape": list(matrix.shape),
                "strides": None,
                "typestr": "<f4",
                "version": 3,
            }
        ).encode()
        with self._lock:
            xgb_core._check_call(
                xgb_core._LIB.XGBoosterPredictFromDense(
                    self._booster.handle,
                    interface,
                    self._config,
                    self._proxy,
                    ctypes.byref(self._shape),
                    ctypes.byref(self._dims),
                    ctypes.byref(self._result),
                )
            )
            shape = tuple(self._shape[i] for i in range(self._dims.value))
            scores = np.ctypeslib.as_array(self._result, shape=(int(np.prod(shape)),)).copy()
        return scores.reshape(shape) if len(shape) > 1 else scores

    def close(self) -> None:
        with self._lock:
            if self._proxy:
                xgb_core._check_call(xgb_core._LIB.XGDMatrixFree(self._proxy))
                self._proxy = ctypes.c_void_p()
