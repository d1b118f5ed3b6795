"""Notebook 3: compiled CPU kernels with Numba."""

from cells import check, code, exercise, md

FILENAME = "03_numba_cpu_kernels.ipynb"

CELLS = [
    md(r"""
# 3. Making it fast on the CPU with Numba

Notebook 1 made the depthwise convolution fast by *avoiding* Python loops: NumPy sweeps whole
arrays per kernel tap. That costs temporaries and memory traffic. A compiler lets us write the
loops again, and have them run at machine speed. [Numba](https://numba.pydata.org) compiles a
subset of Python (loops, NumPy arrays, scalars) to machine code with LLVM when a function is first
called.

You will see:

* `@njit`: the plain loops, compiled;
* why the **loop order** matters: NHWC puts channels last, so the innermost loop over channels is a
  unit-stride stream that LLVM turns into **SIMD** instructions;
* `prange`: splitting the outer loop over threads, over what *owns* each output;
* a **race condition** in the filter gradient, and two ways to avoid it;
* a speed comparison with NumPy, PyTorch and this project's `cpu` backend.

Two "your turn" exercises ask for parallel kernels of your own (the gather-style input gradient,
a race-free filter gradient), checked against `npxception.ops` and for bitwise determinism.

**Runtime:** measured 3.0 minutes on 2 CPU cores of a busy shared machine, a good part of it
compiling (fast mode: about 20 s). Compiled functions are cached on disk (`cache=True`), so a
second run skips the compiling. Timings depend on the machine and on what else runs on it; every
number below is measured when the notebook runs.
"""),
    code(r"""
import os
import re
import time

import matplotlib.pyplot as plt
import numba
import numpy as np
from numba import njit, prange

from npxception import ops

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
rng = np.random.default_rng(0)
print("Numba", numba.__version__, "| threads available:", numba.get_num_threads())


def median_time(fn, repeat=2 if FAST else 5):
    # Median of a few runs after one warm-up call (the warm-up also triggers compilation).
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
"""),
    md(r"""
## 3.1 From loops to `@njit`

Here is notebook 1's depthwise loop nest, for $M = 1$ and 'valid' padding, written so that the
innermost loop runs over channels. Only the decorator is new. `cache=True` stores the machine code
next to the source (or, in a notebook, in IPython's cache folder) so that it is compiled once, not
in every process.
"""),
    code(r"""
def depthwise_python(x, w):
    # x (N, H, W, C), w (kh, kw, C, 1) -> y (N, H-kh+1, W-kw+1, C).
    n_img, h, width, c_in = x.shape
    kh, kw = w.shape[0], w.shape[1]
    ho, wo = h - kh + 1, width - kw + 1
    y = np.zeros((n_img, ho, wo, c_in), dtype=x.dtype)
    for n in range(n_img):
        for i in range(ho):
            for j in range(wo):
                for p in range(kh):
                    for q in range(kw):
                        for c in range(c_in):          # innermost: contiguous in NHWC
                            y[n, i, j, c] += x[n, i + p, j + q, c] * w[p, q, c, 0]
    return y


depthwise_njit = njit(cache=True)(depthwise_python)   # the same function, compiled

x = rng.standard_normal((2, 18, 18, 16)).astype(np.float32)
w = rng.standard_normal((3, 3, 16, 1)).astype(np.float32)
start = time.perf_counter()
y = depthwise_njit(x, w)
first_call = time.perf_counter() - start
print(f"first call (compiles, or loads the cache): {first_call:.2f} s")
print("max |njit - ops.depthwise_conv2d| =", np.abs(y - ops.depthwise_conv2d(x, w)).max())

t_python = median_time(lambda: depthwise_python(x, w), repeat=1)
t_njit = median_time(lambda: depthwise_njit(x, w))
t_numpy = median_time(lambda: ops.depthwise_conv2d(x, w))
print(f"2x18x18x16: Python loops {t_python * 1e3:8.1f} ms | NumPy reference {t_numpy * 1e3:6.3f} ms"
      f" | njit {t_njit * 1e3:6.3f} ms  ({t_python / t_njit:,.0f}x faster than the Python loops)")
"""),
    md(r"""
## 3.2 Loop order, memory layout and SIMD

A modern CPU core can multiply and add 8 (AVX2) or 16 (AVX-512) float32 values in one
instruction, but only if they sit next to each other in memory and the loop has no dependence
between iterations. In NHWC, `x[n, i+p, j+q, 0:C]` is exactly such a contiguous run, and the
channel loop above is independent across `c`. Move the channel loop **outermost** and the
innermost loop walks over `q`, stepping $C$ elements at a time, and LLVM has nothing to vectorize.

The two versions compute the same thing; count the packed (SIMD) arithmetic instructions in the
machine code Numba produced for each, then time them.
"""),
    code(r"""
@njit(cache=True)
def depthwise_channel_outer(x, w):
    # The same sum with the loops in 'NCHW order': channel outermost, strided inner loop.
    n_img, h, width, c_in = x.shape
    kh, kw = w.shape[0], w.shape[1]
    ho, wo = h - kh + 1, width - kw + 1
    y = np.zeros((n_img, ho, wo, c_in), dtype=x.dtype)
    for c in range(c_in):
        for n in range(n_img):
            for i in range(ho):
                for j in range(wo):
                    for p in range(kh):
                        for q in range(kw):
                            y[n, i, j, c] += x[n, i + p, j + q, c] * w[p, q, c, 0]
    return y


def packed_float_ops(fn, *args):
    # Count packed single-precision multiply/add/FMA instructions (x86: ...ps) in the assembly.
    # A fresh, uncached compile: Numba keeps no assembly for code it loaded from its disk cache.
    fresh = njit(fn.py_func)
    fresh(*args)
    asm = "\n".join(fresh.inspect_asm().values())
    return len(re.findall(r"\bv?(?:mul|add|fmadd\d*|fmaddsub\d*)ps\b", asm))


print("packed float instructions, channel loop innermost:", packed_float_ops(depthwise_njit, x, w))
print("packed float instructions, channel loop outermost:",
      packed_float_ops(depthwise_channel_outer, x, w))

size = 32 if FAST else 56
x = rng.standard_normal((4, size + 2, size + 2, 128)).astype(np.float32)
w = rng.standard_normal((3, 3, 128, 1)).astype(np.float32)
t_inner = median_time(lambda: depthwise_njit(x, w))
t_outer = median_time(lambda: depthwise_channel_outer(x, w))
print(f"4x{size}x{size}x128: channels innermost {t_inner * 1e3:.1f} ms, outermost "
      f"{t_outer * 1e3:.1f} ms -> {t_outer / t_inner:.1f}x")
"""),
    md(r"""
(The instruction count is for x86 CPUs; on an ARM machine both counts read 0, since its SIMD
instructions have other names, but the timing still shows the effect.)

## 3.3 Threads with `prange`

`@njit(parallel=True)` plus `prange` instead of `range` splits a loop's iterations over threads.
The one rule: **iterations must not write the same memory.** For the forward pass that is easy.
Each output row `y[n, i]` is written by exactly one iteration, so parallelize over the $N H_o$
output rows, the thing that *owns* the output.
"""),
    code(r"""
@njit(parallel=True, cache=True)
def depthwise_parallel(x, w):
    n_img, h, width, c_in = x.shape
    kh, kw = w.shape[0], w.shape[1]
    ho, wo = h - kh + 1, width - kw + 1
    y = np.zeros((n_img, ho, wo, c_in), dtype=x.dtype)
    for row in prange(n_img * ho):                    # one output row per iteration
        n, i = row // ho, row % ho
        for j in range(wo):
            for p in range(kh):
                for q in range(kw):
                    for c in range(c_in):
                        y[n, i, j, c] += x[n, i + p, j + q, c] * w[p, q, c, 0]
    return y


print("max |parallel - serial| =", np.abs(depthwise_parallel(x, w) - depthwise_njit(x, w)).max())
threads = numba.get_num_threads()
timings = {}
for t in sorted({1, threads}):
    numba.set_num_threads(t)
    timings[t] = median_time(lambda: depthwise_parallel(x, w))
numba.set_num_threads(threads)
for t, seconds in timings.items():
    print(f"{t} thread(s): {seconds * 1e3:.1f} ms  (speed-up {timings[1] / seconds:.2f}x)")
"""),
    md(r"""
The speed-up is at most the number of cores, and less on a machine that other programs share, or
where memory bandwidth, not arithmetic, is the limit (a depthwise convolution does only 9
multiply-adds per value it reads).

## 3.4 A race in the filter gradient

The filter gradient is a **reduction**: every output pixel contributes to every tap,
$dw[p,q,c] = \sum_{n,i,j} x[n,i+p,j+q,c]\,dy[n,i,j,c]$. Parallelize the same way as the forward
pass, over output rows, and every iteration does `dw[p, q, c] += ...` on the **same** small array.
`+=` is a read, an add and a write; when two threads interleave them, one thread's addition
is lost. Whether it happens depends on timing, so the bug comes and goes from run to run:
"""),
    code(r"""
@njit(parallel=True, cache=True)
def filter_grad_racy(dy, x, kh, kw):
    n_img, ho, wo, c_in = dy.shape
    dw = np.zeros((kh, kw, c_in), dtype=x.dtype)
    for row in prange(n_img * ho):
        n, i = row // ho, row % ho
        for j in range(wo):
            for p in range(kh):
                for q in range(kw):
                    for c in range(c_in):
                        dw[p, q, c] += x[n, i + p, j + q, c] * dy[n, i, j, c]   # shared: a race
    return dw


x = rng.standard_normal((16, 34, 34, 8))
dy = rng.standard_normal((16, 32, 32, 8))
w = rng.standard_normal((3, 3, 8, 1))
_, dw_reference = ops.depthwise_conv2d_backward(dy, x, w)
runs = 10
errors = [np.abs(filter_grad_racy(dy, x, 3, 3) - dw_reference[..., 0]).max() for _ in range(runs)]
wrong = sum(e > 1e-9 for e in errors)
print(f"{numba.get_num_threads()} threads: {wrong} of {runs} runs gave a wrong gradient; "
      f"largest error {max(errors):.3g} (gradient entries are of size "
      f"{np.abs(dw_reference).mean():.0f})")
"""),
    md(r"""
On a single-threaded machine, or when the other cores are busy, the threads may never overlap and
every run can come out right. That is exactly what makes races dangerous: tests pass, and a
bigger machine silently trains on wrong gradients.

Two fixes, both used in this project's `cpu` backend:

1. **Parallelize over what owns the output.** For the *input* gradient, loop over input pixels
   and *gather* from every output that read them, instead of scattering from outputs into
   overlapping windows. Each iteration then writes its own `dx[n, r]`.
2. **Per-thread partials.** For the *filter* gradient, where every iteration contributes to every
   entry, cut the rows into a fixed number of chunks, let each chunk sum into its own partial
   `dw`, and add the partials afterwards. Because the cut depends only on the shape, not on the
   number of threads, the result is bitwise the same on 1 thread or 16.
"""),
    code(r"""
@njit(parallel=True, cache=True)
def filter_grad_chunked(dy, x, kh, kw, chunks):
    n_img, ho, wo, c_in = dy.shape
    rows = n_img * ho
    partials = np.zeros((chunks, kh, kw, c_in), dtype=x.dtype)
    for k in prange(chunks):                          # each chunk owns partials[k]
        for row in range(k * rows // chunks, (k + 1) * rows // chunks):
            n, i = row // ho, row % ho
            for j in range(wo):
                for p in range(kh):
                    for q in range(kw):
                        for c in range(c_in):
                            partials[k, p, q, c] += x[n, i + p, j + q, c] * dy[n, i, j, c]
    dw = partials[0].copy()                           # added in a fixed order: deterministic
    for k in range(1, chunks):
        dw += partials[k]
    return dw


errors = [np.abs(filter_grad_chunked(dy, x, 3, 3, 16) - dw_reference[..., 0]).max()
          for _ in range(runs)]
print(f"chunked: worst error over {runs} runs {max(errors):.1e}")
results = []
for t in sorted({1, threads}):
    numba.set_num_threads(t)
    results.append(filter_grad_chunked(dy, x, 3, 3, 16))
numba.set_num_threads(threads)
print("bitwise identical on 1 and", threads, "threads:", all((r == results[0]).all() for r in results))
"""),
    md(r"""
### Your turn: the gather-style input gradient

Fix 1 in code. Notebook 2 wrote the input gradient as a scatter, `dx[n, i+p, j+q, c] += ...`
from every output $(i, j)$: parallel over outputs, that is a race, since neighbouring outputs
share input pixels. Turn it into a gather: for input pixel $(a, b)$,

$$
dx[n, a, b, c] = \sum_{p, q} dy[n,\, a - p,\, b - q,\, c]\; w[p, q, c, 0],
$$

over the taps whose output $(a - p, b - q)$ exists. Write `input_grad_gather` with `prange` over
the $N H$ input rows; each iteration then writes only its own row of `dx`. The check compares it
with `ops.depthwise_conv2d_backward` (target $10^{-12}$ in float64) and requires the same bits on
1 thread and on two, over several runs. It also reads your code: it must be compiled with
`parallel=True`, loop with `prange`, and never `+=` into an element that other iterations of the
`prange` loop also update.
"""),
    exercise("nb03", "input_grad_gather"),
    check(r"""
from exercises.checks import check_filter_grad_by_channel, check_input_grad_gather

check_input_grad_gather(input_grad_gather)
"""),
    md(r"""
### Your turn: a filter gradient that owns its output

A third fix for the filter gradient: parallelize over **channels**. Every entry
$dw[p, q, c]$ belongs to exactly one channel, so an iteration per channel owns its part of `dw`
and no partial sums are needed. Write `filter_grad_by_channel` with `prange` over $c$. (Is it
fast? Each iteration now strides through memory $C$ elements at a time; time it against
`filter_grad_chunked` and explain the difference with 3.2.)
"""),
    exercise("nb03", "filter_grad_by_channel"),
    check(r"""
check_filter_grad_by_channel(filter_grad_by_channel)
t_channel = median_time(lambda: filter_grad_by_channel(dy, x, 3, 3))
t_chunked = median_time(lambda: filter_grad_chunked(dy, x, 3, 3, 16))
print(f"{x.shape}: by channel {t_channel * 1e3:.1f} ms, chunked {t_chunked * 1e3:.1f} ms")
"""),
    md(r"""
## 3.5 How fast, compared with what?

Now the whole depthwise convolution, forward and backward, on shapes like Xception's (3x3
kernels, stride 1, `"same"` padding), in float32:

* **NumPy**: the reference backend (`backend="numpy"`), notebook 1's tap loop;
* **our njit**: the parallel forward from 3.3 (forward only; it has no padding, so it gets an
  input padded beforehand);
* **npxception cpu**: this project's Numba backend (`backend="cpu"`), which adds an unrolled 3x3
  fast path, the gather-style input gradient and the chunked filter gradient;
* **PyTorch**: `torch.nn.functional.conv2d` with `groups=C` (a depthwise convolution), given
  NCHW tensors prepared outside the timing, with the same number of threads.
"""),
    code(r"""
try:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
except ImportError:                                   # PyTorch is optional here
    torch = None

batch = 2 if FAST else 8
shapes = [(37, 256), (19, 728)] if FAST else [(74, 128), (37, 256), (19, 728), (10, 1024)]


def time_depthwise(side, channels):
    # Forward and backward times (seconds) of every implementation, for one NHWC shape.
    x = rng.standard_normal((batch, side, side, channels)).astype(np.float32)
    w = rng.standard_normal((3, 3, channels, 1)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    row = {"shape": f"{batch}x{side}x{side}x{channels}"}
    for backend in ("numpy", "cpu"):
        row[f"{backend} fwd"] = median_time(
            lambda b=backend: ops.depthwise_conv2d(x, w, padding="same", backend=b))
        row[f"{backend} bwd"] = median_time(
            lambda b=backend: ops.depthwise_conv2d_backward(dy, x, w, padding="same", backend=b))
    row["njit fwd"] = median_time(lambda: depthwise_parallel(padded, w))
    if torch is not None:
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
        wt = torch.from_numpy(w).permute(2, 3, 0, 1).contiguous().requires_grad_(True)
        dyt = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous()

        def torch_forward():
            with torch.no_grad():
                return F.conv2d(xt, wt, padding=1, groups=channels)

        def torch_backward():
            # Forward and backward together: PyTorch needs the graph; subtract the forward time.
            out = F.conv2d(xt, wt, padding=1, groups=channels)
            return torch.autograd.grad(out, (xt, wt), dyt)

        row["torch fwd"] = median_time(torch_forward)
        row["torch bwd"] = max(median_time(torch_backward) - row["torch fwd"], 0.0)
    return row


rows = [time_depthwise(side, channels) for side, channels in shapes]
columns = [c for c in rows[0] if c != "shape"]
print(f"{'shape':<18}" + "".join(f"{c:>11}" for c in columns) + "   (milliseconds)")
for row in rows:
    print(f"{row['shape']:<18}" + "".join(f"{row[c] * 1e3:>11.2f}" for c in columns))
"""),
    code(r"""
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=False)
labels = [row["shape"] for row in rows]
positions = np.arange(len(rows))
for ax, phase in zip(axes, ("fwd", "bwd")):
    series = [c for c in columns if c.endswith(phase)]
    width = 0.8 / len(series)
    for k, name in enumerate(series):
        speedup = [row[f"numpy {phase}"] / row[name] if row[name] > 0 else np.nan for row in rows]
        ax.bar(positions + k * width, speedup, width, label=name.replace(f" {phase}", ""))
    ax.set_xticks(positions + width * (len(series) - 1) / 2, labels, rotation=15)
    ax.set_ylabel("speed-up over the NumPy reference")
    ax.set_title(f"depthwise 3x3, {'forward' if phase == 'fwd' else 'backward (dx and dw)'}, "
                 f"{threads} thread(s)")
    ax.axhline(1, color="gray", lw=0.8)
    ax.legend()
plt.tight_layout()
if not FAST:
    fig.savefig("figures/cpu_speed.png", dpi=80, bbox_inches="tight")
plt.show()
"""),
    md(r"""
Read the plot with the machine in mind: the bars are ratios measured in the same run, so they are
more stable than the milliseconds, but with few cores and other programs running they still move
by tens of percent between runs. `benchmarks/` in the repository has the project's systematic
measurements.

## Summary

* `@njit` turns plain loops into machine code; put the contiguous (channel) loop innermost and
  LLVM emits SIMD instructions for it.
* `prange` parallelizes a loop; make every iteration own what it writes.
* Reductions (filter gradients) must not `+=` into shared memory from several iterations: use
  per-chunk partials with a fixed split, or restructure the loop to gather instead of scatter.

## Exercises

1. `filter_grad_chunked` adds 16 partials. With 2 threads, how many of them does each thread
   compute, and why does a fixed count of 16 (rather than one per thread) make the result
   independent of the thread count?
2. A depthwise convolution reads each input value 9 times and does 9 multiply-adds per output.
   Counting 4 bytes per float32 read once from memory, how many multiply-adds per byte is that?
   Compare with the pointwise 728 to 728 layer, and say which of the two is limited by memory
   bandwidth on your machine.
3. Run the race of 3.4 with `numba.set_num_threads(1)`. Can it still go wrong? Explain.
4. Write the forward depthwise convolution with stride 2 in `@njit` (start from
   `depthwise_njit`) and time it against `ops.depthwise_conv2d(..., stride=2, backend="cpu")`.
5. (A small project) Write the pointwise convolution as a Numba loop nest with the channel loop
   innermost, and compare it with NumPy's matrix product (which calls BLAS). How far off are you,
   and what does BLAS do that your loops do not?
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
