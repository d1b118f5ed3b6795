"""A matrix product that a Numba kernel can call: notebook 9's door to BLAS.

Numba compiles `np.dot` on matrices to a BLAS call only when SciPy is installed (it borrows SciPy's
BLAS wrappers), and this project does not depend on SciPy. So this module offers the same thing
through NumPy's own OpenBLAS, the way the cpu backend reaches it (`npxception/backends/cpu/tuned/blas.py`):

    matmul_into(a, b, out)      out[...] = a @ b, from inside an @njit or @njit(parallel=True) kernel

a (m, k), b (k, n) and out (m, n) are 2-D arrays of one float dtype whose rows are contiguous, so a
slice of rows `x[start:stop]` of a C-contiguous array is fine and costs no copy. The product runs
on the calling thread with as many BLAS threads as BLAS is set to: hold BLAS to one thread
(`threadpoolctl.threadpool_limits(1, "blas")`) when you call it from many threads at once.

Where NumPy's BLAS is not the OpenBLAS of its wheels, `matmul_into` is a plain loop nest: slow, but
the same contract, so the exercises still run.
"""

from __future__ import annotations

from numba import njit

from npxception.backends.cpu.tuned import blas as _blas

BLAS = _blas.available()  # whether matmul_into calls OpenBLAS (else the loop nest below)


@njit(cache=True)
def _check(a, b, out):
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
        raise ValueError("matmul_into: shapes do not match: a (m, k), b (k, n), out (m, n)")
    size = a.itemsize
    if b.itemsize != size or out.itemsize != size:
        raise ValueError("matmul_into: a, b and out must have the same float dtype")
    if a.strides[1] != size or b.strides[1] != size or out.strides[1] != size:
        raise ValueError("matmul_into: every row must be contiguous (a slice of rows is fine)")
    return m, k, n


@njit(cache=True)
def _matmul_blas(a, b, out):
    m, k, n = _check(a, b, out)
    if m == 0 or n == 0:
        return
    if k == 0:                      # an empty sum (BLAS rejects a leading dimension of 0)
        out[:, :] = 0
        return
    size = a.itemsize
    # Row-major GEMM on raw addresses: the row strides are the leading dimensions, so a slice of
    # rows is read in place.
    _blas.gemm(False, False, m, n, k, a.ctypes.data, a.strides[0] // size, b.ctypes.data, b.strides[0] // size,
               0.0, out.ctypes.data, out.strides[0] // size, size)


@njit(cache=True)
def _matmul_loops(a, b, out):
    m, k, n = _check(a, b, out)
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
        for p in range(k):
            v = a[i, p]
            for j in range(n):           # contiguous: SIMD
                out[i, j] += v * b[p, j]


matmul_into = _matmul_blas if BLAS else _matmul_loops
