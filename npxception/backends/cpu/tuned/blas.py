"""NumPy's own BLAS, callable from Numba kernels: cblas_sgemm and cblas_dgemm as external symbols.

NumPy's wheels ship OpenBLAS built with 64-bit integers and prefixed names
(`scipy_cblas_sgemm64_`). This module finds that library (threadpoolctl knows where it is loaded
from), registers the two GEMMs with LLVM under names of our own, and declares them to Numba as
`ExternalFunction`s, so a `@njit(parallel=True)` kernel can call one GEMM per `prange` chunk on
Numba's own threads (gemm.py). The symbols are resolved by name when a kernel is compiled or loaded
from the on-disk cache, so `cache=True` keeps working.

Pointers travel as integers (`arr.ctypes.data`): on the 64-bit ABIs Numba supports, a pointer and
an int64 are passed the same way.

    load()                  find and register them (../runtime.initialise() calls it); idempotent
    available()             whether they were found (False: callers use their NumPy fallback)
    gemm(...)               C = op(A) @ op(B) + beta * C, row-major, from inside a Numba kernel
    set_threads, get_threads  OpenBLAS's own thread count (../runtime.single_threaded_blas uses them)

When another BLAS is loaded (MKL, Accelerate, a 32-bit-integer OpenBLAS), available() is False.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from threadpoolctl import threadpool_info

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # the CBLAS enum values

SGEMM_SYMBOL = "npxception_cblas_sgemm"
DGEMM_SYMBOL = "npxception_cblas_dgemm"


def _signature(real):
    i32, i64 = types.int32, types.int64
    # order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
    return types.void(i32, i32, i32, i64, i64, i64, real, types.intp, i64, types.intp, i64, real,
                      types.intp, i64)


sgemm = types.ExternalFunction(SGEMM_SYMBOL, _signature(types.float32))
dgemm = types.ExternalFunction(DGEMM_SYMBOL, _signature(types.float64))


@njit(cache=True, inline="always")
def gemm(trans_a, trans_b, m, n, k, pa, lda, pb, ldb, beta, pc, ldc, itemsize):
    """C (m, n; row stride ldc) = op(A) @ op(B) + beta * C; pa, pb, pc: addresses; float64 if itemsize is 8.

    op(A) is (m, k): A stored (m, k) with row stride lda, or (k, m) when trans_a; B likewise (k, n).
    With beta = 0, C is only written (its old contents, even NaN, are ignored).
    """
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    if itemsize == 8:
        dgemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, pa, lda, pb, ldb, np.float64(beta), pc, ldc)
    else:
        sgemm(ROW_MAJOR, ta, tb, m, n, k, np.float32(1.0), pa, lda, pb, ldb, np.float32(beta), pc, ldc)


_found: tuple | None = None  # (set_num_threads, get_num_threads) of NumPy's OpenBLAS, once loaded
_loaded = False


def load() -> None:
    """Register NumPy's OpenBLAS GEMMs with LLVM under our symbol names, once (see the docstring)."""
    global _found, _loaded
    if not _loaded:
        _loaded = True
        _found = _find()


def available() -> bool:
    """Whether the GEMMs are callable from kernels (loads them on first use)."""
    load()
    return _found is not None


def set_threads(n: int) -> None:
    _found[0](n)


def get_threads() -> int:
    return _found[1]()


def _find():
    """(set_num_threads, get_num_threads) of NumPy's OpenBLAS after registering its GEMMs, or None."""
    for info in threadpool_info():
        if info.get("internal_api") != "openblas" or not info.get("filepath"):
            continue
        try:
            lib = ctypes.CDLL(info["filepath"])
            s, d = lib.scipy_cblas_sgemm64_, lib.scipy_cblas_dgemm64_
            set_threads, get_threads = lib.scipy_openblas_set_num_threads64_, lib.scipy_openblas_get_num_threads64_
        except (OSError, AttributeError):
            continue
        for symbol, fn in ((SGEMM_SYMBOL, s), (DGEMM_SYMBOL, d)):
            llvm.add_symbol(symbol, ctypes.cast(fn, ctypes.c_void_p).value)
        set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
        get_threads.argtypes, get_threads.restype = [], ctypes.c_int
        return set_threads, get_threads
    return None
