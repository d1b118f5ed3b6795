"""Regular 2-D convolution on the GPU, NHWC: im2col + the tiled GEMM of gemm.py.

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout) (output size in
reference/conv.py). im2col lays every receptive field out as one row:
    cols[(n, i, j), (p, q, c)] = xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c]   (N*Ho*Wo, kh*kw*Cin)
and w is already (kh*kw*Cin, Cout) in memory, so
    Y = cols @ W,   dW = cols^T @ dY (split-K over pixels),   dcols = dY @ W^T
and dx is col2im of dcols, written as a gather (`output_index`, ../_index.py): each input element
sums the entries of dcols that read it, so no two threads write the same address and no atomics
are needed.

In Xception this runs only for the two stem convolutions and the 1x1 stride-2 shortcuts (Cin is 3
or 32 in the stem, so the im2col matrix stays small next to the activations).
"""

from __future__ import annotations

from numba import cuda

from ...shapes import conv_output_hw
from ._index import input_index, output_index
from ._launch import THREADS, blocks_for, launch, per_dtype
from .arrays import empty
from .gemm import matmul


def _make_im2col(dtype):
    @cuda.jit(cache=True)
    def im2col_kernel(x, kh, kw, sh, sw, pt, pl, dil_h, dil_w, ho, wo, cols):
        """cols (N*Ho*Wo, kh*kw*Cin); thread i handles flat entry i (channel fastest: coalesced)."""
        cin = x.shape[3]
        width = cols.shape[1]
        start, step = cuda.grid(1), cuda.gridsize(1)
        for idx in range(start, cols.size, step):
            pix = idx // width
            k = idx - pix * width
            tap = k // cin
            c = k - tap * cin
            p = tap // kw
            q = tap - p * kw
            j = pix % wo
            t = pix // wo
            i = t % ho
            n = t // ho
            h = input_index(i, p, sh, dil_h, pt)
            w = input_index(j, q, sw, dil_w, pl)
            if 0 <= h < x.shape[1] and 0 <= w < x.shape[2]:
                cols[pix, k] = x[n, h, w, c]
            else:
                cols[pix, k] = dtype(0)

    return im2col_kernel


def _make_col2im(dtype):
    @cuda.jit(cache=True)
    def col2im_kernel(dcols, kh, kw, sh, sw, pt, pl, dil_h, dil_w, ho, wo, dx):
        """dx[n, h, w, c] = sum of the dcols entries that im2col copied from x[n, h, w, c]."""
        height, width, cin = dx.shape[1], dx.shape[2], dx.shape[3]
        start, step = cuda.grid(1), cuda.gridsize(1)
        for idx in range(start, dx.size, step):
            c = idx % cin
            t = idx // cin
            w = t % width
            t = t // width
            h = t % height
            n = t // height
            acc = dtype(0)
            for p in range(kh):
                i = output_index(h, p, sh, dil_h, pt, ho)   # the output row that read h via tap p
                if i < 0:
                    continue
                for q in range(kw):
                    j = output_index(w, q, sw, dil_w, pl, wo)
                    if j < 0:
                        continue
                    acc += dcols[(n * ho + i) * wo + j, (p * kw + q) * cin + c]
            dx[n, h, w, c] = acc

    return col2im_kernel


_IM2COL = per_dtype(_make_im2col)
_COL2IM = per_dtype(_make_col2im)


def _im2col(x, kernel_hw, stride, padding, dilation):
    kh, kw = kernel_hw
    ho, wo = conv_output_hw(x.shape[1:3], kernel_hw, stride, padding, dilation)
    cols = empty((x.shape[0] * ho * wo, kh * kw * x.shape[3]), x.dtype)
    launch(_IM2COL[x.dtype], blocks_for(cols.size), THREADS, x, kh, kw, stride[0], stride[1],
           padding[0], padding[2], dilation[0], dilation[1], ho, wo, cols)
    return cols, ho, wo


def conv2d(x, w, stride, padding, dilation):
    kh, kw, cin, cout = w.shape
    cols, ho, wo = _im2col(x, (kh, kw), stride, padding, dilation)
    y = matmul(cols, w.reshape(kh * kw * cin, cout))
    return y.reshape(x.shape[0], ho, wo, cout)


def conv2d_backward(dy, x, w, stride, padding, dilation):
    kh, kw, cin, cout = w.shape
    cols, ho, wo = _im2col(x, (kh, kw), stride, padding, dilation)
    dy_rows = dy.reshape(cols.shape[0], cout)
    dw = matmul(cols, dy_rows, a_transposed=True).reshape(w.shape)
    dcols = matmul(dy_rows, w.reshape(kh * kw * cin, cout), b_transposed=True)
    dx = empty(x.shape, x.dtype)
    launch(_COL2IM[x.dtype], blocks_for(dx.size), THREADS, dcols, kh, kw, stride[0], stride[1],
           padding[0], padding[2], dilation[0], dilation[1], ho, wo, dx)
    return dx, dw
