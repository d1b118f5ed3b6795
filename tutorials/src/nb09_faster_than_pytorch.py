"""Notebook 9: profiling a training step, the roofline, and the cpu backend's kernels step by step."""

from cells import check, code, exercise, md

FILENAME = "09_faster_than_pytorch_on_a_cpu.ipynb"

CELLS = [
    md(r"""
# 9. Faster than PyTorch on a CPU

Notebook 3 wrote the depthwise kernels with `@njit` and `prange`. This one takes a whole training
step of `XceptionConfig.small()` and asks where its time goes and how much faster it could go,
then walks through what the `cpu` backend does about it, one step at a time:

* **profile** a step: every layer's forward and backward, timed;
* draw the **roofline**: this machine's arithmetic peak and memory bandwidth, measured here, and
  each layer placed on it from its shapes (depthwise: memory-bound; pointwise: compute-bound);
* **fuse** batch normalization and ReLU into one pass (half the bytes);
* run a pointwise convolution as **GEMM tasks in a `prange`**, each a single-threaded BLAS call,
  and see what happens when BLAS's threads and Numba's threads multiply (**oversubscription**), and
  what idle threads do between kernels (**spin-waiting**);
* build a 3x3 convolution's **im2col matrix in blocks** that stay in cache;
* keep every result **bitwise equal at any thread count**, and compare a whole step with PyTorch.

Four "your turn" exercises: a layer's point on the roofline, a fused batch norm + ReLU kernel, the
pointwise GEMM tasks, and a per-channel reduction in fixed chunks. They are graded on results and
on the exact bits (1 thread against 2), never on speed.

Every timing below is measured when the notebook runs, printed as ratios taken in the same run,
with the CPU and the load average beside them: on a machine that other programs share, the
milliseconds move from run to run, and ratios move less. **Runtime:** under a minute in fast mode
on 2 cores once Numba's disk cache holds the backend's kernels (a first run on a fresh checkout
compiles them, about a minute more).
"""),
    code(r"""
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import npxception
import matplotlib.pyplot as plt
import numba
import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_info, threadpool_limits

from exercises.blas import BLAS, matmul_into
from npxception import Xception, XceptionConfig, nn, ops
from npxception.backends import get_backend

get_backend("cpu")  # first: it sets OpenMP's wait policy (section 9.6) before Numba starts threads
FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
rng = np.random.default_rng(0)
THREADS = numba.get_num_threads()


def lscpu():
    # lscpu's "key: value" lines (empty where there is no lscpu).
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


CPU_INFO = lscpu()
CPU = CPU_INFO.get("Model name") or platform.processor() or platform.machine()


def conditions():
    # What every timing depends on, printed beside it.
    return f"[{CPU}, {THREADS} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs]"


def median_time(fn, repeat=3 if FAST else 7):
    # Median of a few runs after one warm-up call (which also compiles).
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def best_time(fn, repeat=5):
    # Best of a few runs: for a machine's limits, since other work only ever makes a run slower.
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


print(f"{CPU}; L2 {CPU_INFO.get('L2 cache', '?')}, L3 {CPU_INFO.get('L3 cache', '?')}")
print(f"Numba {numba.__version__}, {THREADS} threads")
print(f"NumPy {np.__version__}; matmul_into calls OpenBLAS: {BLAS}")
"""),
    md(r"""
## 9.1 Profile a training step

A training step is forward, loss, backward and the SGD update. To see where its time goes, wrap
every layer's `forward` and `backward` so that each call adds its wall time to a table (what
`benchmarks/bench_model.py` does for its per-layer table). The layers that compute are
`model.network.compute_layers()`: the leaves, with each batch norm that a ReLU follows fused into
one `BatchNormReLU` (section 9.4). The `cpu` backend runs every kernel before it returns, so wall
time around a call is the kernel's time.

The first step compiles the backend's kernels, or loads them from Numba's disk cache.
"""),
    code(r"""
config = XceptionConfig.small()
batch = 16 if FAST else 64
model = Xception(config, backend="cpu", seed=0)
images = rng.uniform(-1, 1, (batch, *config.input_shape)).astype(np.float32)
labels = rng.integers(0, config.num_classes, batch)
be = model.backend
velocity = {}


def train_step():
    logits = model.forward(images, True)
    model.backward(be.softmax_cross_entropy_backward(1.0, logits, labels, 0.0), input_grad=False)
    for key, (p, g) in model.trainable().items():
        if key not in velocity:
            velocity[key] = be.zeros(p.shape, p.dtype)
        be.sgd_update(p, g, velocity[key], 0.01, 0.9, False, 0.0)


start = time.perf_counter()
train_step()
print(f"first step (compiles or loads the kernels): {time.perf_counter() - start:.1f} s")
for _ in range(2):    # the next steps still load a few kernels and touch new buffers for the first time
    train_step()
step_s = median_time(train_step)
print(f"small, batch {batch}: {step_s * 1e3:.1f} ms per step, {batch / step_s:.0f} images/s  {conditions()}")


def instrument(model):
    # Every computing layer's forward and backward, timed into table[name][phase]; the input
    # shape of its last forward is kept too (9.3 places the layers from their shapes).
    table = {}

    def timed(layer, method, phase):
        def run(*args):
            start = time.perf_counter()
            out = method(*args)
            entry = table.setdefault(layer.name, {"layer": layer, "forward": 0.0, "backward": 0.0})
            entry[phase] += time.perf_counter() - start
            if phase == "forward":
                entry["input"] = args[0].shape
            return out
        return run

    for layer in model.network.compute_layers():
        layer.forward = timed(layer, layer.forward, "forward")     # an instance attribute: it
        layer.backward = timed(layer, layer.backward, "backward")  # shadows the class's method
    return table


table = instrument(model)
steps = 3 if FAST else 10
start = time.perf_counter()
for _ in range(steps):
    train_step()
timed_step = (time.perf_counter() - start) / steps
for layer in model.network.compute_layers():
    del layer.forward, layer.backward                            # the class's methods again

in_layers = sum(e["forward"] + e["backward"] for e in table.values()) / steps
print(f"{timed_step * 1e3:.1f} ms per step, {in_layers * 1e3:.1f} ms of it inside layers (the rest: the "
      "residual adds, the loss, the SGD update and the timing itself)\n")
print(f"{'layer':<40}{'type':<17}{'forward ms':>11}{'backward ms':>12}{'share':>7}")
ranked = sorted(table.items(), key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"]))
for name, e in ranked[:12]:
    total = (e["forward"] + e["backward"]) / steps
    print(f"{name:<40}{type(e['layer']).__name__:<17}{e['forward'] / steps * 1e3:>11.2f}"
          f"{e['backward'] / steps * 1e3:>12.2f}{total / in_layers:>7.1%}")
by_type = {}
for e in table.values():
    kind = type(e["layer"]).__name__
    by_type[kind] = by_type.get(kind, 0.0) + (e["forward"] + e["backward"]) / steps
print("\nby layer type: " + ", ".join(f"{k} {v / in_layers:.0%}" for k, v in sorted(by_type.items(),
                                                                                  key=lambda kv: -kv[1])))
"""),
    md(r"""
The separable convolutions (a depthwise 3x3, then a pointwise 1x1) take the largest share, and
their backward passes do about twice the work of their forward passes (an input gradient and a
filter gradient, each about the work of a forward). Batch norm, with and without its fused ReLU,
takes much of the rest, though it does almost no arithmetic. Is that slow? Only a model of the
machine can say.

(For Python-level detail, `cProfile` works too: `python -m cProfile -s tottime` on a script that
runs a few steps lists the Python functions, with each Numba kernel as one call.)

## 9.2 The roofline

A kernel is limited either by arithmetic or by memory traffic. The **roofline** model (Williams,
Waterman and Patterson, 2009) puts both on one plot: a kernel that does $F$ flops and must move
at least $B$ bytes has **arithmetic intensity** $I = F / B$, and it cannot run faster than

$$
\text{attainable GFLOP/s} = \min(\text{peak GFLOP/s},\; I \times \text{bandwidth GB/s}).
$$

The two limits meet at the **ridge point** $I^* = \text{peak} / \text{bandwidth}$: below it a
kernel is memory-bound, above it compute-bound. Both limits are measured here:

* **peak**: a Numba kernel of independent fused multiply-add chains, 12 vectors of 8 floats per
  thread, so that the FMA units never wait for a previous result (`fastmath=True` lets LLVM fuse
  `a * b + c` into one instruction; 2 flops each), and OpenBLAS's SGEMM on a square matrix, the
  rate a real kernel achieves; the roof is the higher of the two (on a busy machine either one
  can be caught at a bad moment);
* **bandwidth**: a `prange` copy of an array, counting the bytes read and written. The array must
  be much larger than the last-level cache, or the number is the cache's bandwidth; in fast mode
  it is small, so read that figure as an upper bound.

`benchmarks/roofline_machine.py` does the same with more care (theoretical peak from `lscpu`,
512-bit vectors, triad, OpenBLAS's SGEMM as the achievable peak).
"""),
    code(r"""
# 12 chains of 8 floats (AVX2 vectors): enough independent FMAs in flight to hide their latency,
# and few enough to stay in AVX2's 16 vector registers (more chains spill to memory, and halve the rate).
LANES = 96


@njit(fastmath=True, cache=True)
def fma_chains(acc, a, b, iterations):
    for _ in range(iterations):
        for j in range(LANES):            # LANES is a constant: unrolled into vector FMAs
            acc[j] = acc[j] * a + b


@njit(parallel=True, cache=True)
def fma_on_threads(acc, a, b, iterations):
    for t in prange(acc.shape[0]):        # one row of chains per thread
        fma_chains(acc[t], a, b, iterations)


@njit(parallel=True, cache=True)
def copy_kernel(dst, src):
    for i in prange(src.size):
        dst[i] = src[i]


iterations = 2_000_000 if FAST else 20_000_000
acc = np.full((THREADS, LANES), 0.5, np.float32)
a, b = np.float32(0.999), np.float32(1e-3)
fma_on_threads(acc, a, b, 1)
fma_gflops = 2 * LANES * iterations * THREADS / best_time(lambda: fma_on_threads(acc, a, b, iterations), 7) / 1e9
n_sq = 1024 if FAST else 4096
sq = rng.standard_normal((n_sq, n_sq)).astype(np.float32)
sgemm_gflops = 2 * n_sq**3 / best_time(lambda: sq @ sq) / 1e9
PEAK = max(fma_gflops, sgemm_gflops)

mib = 64 if FAST else 512
src = np.ones(mib * 2**20 // 4, np.float32)
dst = np.zeros_like(src)                  # both touched now: no page faults inside the timing
seconds = best_time(lambda: copy_kernel(dst, src))
BANDWIDTH = 2 * src.nbytes / seconds / 1e9
RIDGE = PEAK / BANDWIDTH
print(f"peak: FMA chains {fma_gflops:.0f} GFLOP/s, SGEMM {n_sq}x{n_sq} {sgemm_gflops:.0f} GFLOP/s "
      f"({THREADS} threads): the roof is {PEAK:.0f} GFLOP/s")
print(f"bandwidth (prange copy of {mib} MiB, read + write; L3 is {CPU_INFO.get('L3 cache', '?')}): "
      f"{BANDWIDTH:.1f} GB/s")
print(f"ridge point: {RIDGE:.1f} flops per byte  {conditions()}")
"""),
    md(r"""
## 9.3 Each layer on the roofline

A layer's intensity follows from its shapes alone. Count 2 flops per multiply-add, and as bytes
the least a forward pass must move: the input and the weights read once, the output written once
(what `benchmarks/roofline.py` counts; a kernel that reads its input twice moves more, and sits
lower than its point).

* A **3x3 depthwise** convolution of $C$ channels on $N \times H \times W$ pixels (stride 1,
  "same") does $9 N H W C$ multiply-adds and moves $N H W C$ values in, as many out, and $9 C$
  weights: about 18 flops per 8 bytes in float32, **2.25 flops per byte whatever the size**.
* A **pointwise** convolution from $C_{in}$ to $C_{out}$ channels does $N H W C_{in} C_{out}$
  multiply-adds and moves $N H W (C_{in} + C_{out}) + C_{in} C_{out}$ values: for
  $C_{in} = C_{out} = C$ and many pixels, about $C / 4$ flops per byte in float32, so it grows
  with the width.

### Your turn: a layer's point on the roofline

Write `roofline_point(kind, batch, height, width, c_in, c_out, itemsize)`, returning `(flops,
bytes)` of one forward pass for `kind` "depthwise" (3x3, multiplier 1, so $C_{out} = C_{in}$) or
"pointwise". The check compares your counts with the rules above, exactly, on six shapes.
"""),
    exercise("nb09", "roofline_point"),
    check(r"""
from exercises.checks import check_bn_relu_rows, check_channel_sums, check_pointwise_chunked, check_roofline_point

check_roofline_point(roofline_point)
"""),
    md(r"""
Now every separable convolution of `small`, split into its two halves, timed on its own shapes
(forward pass, `cpu` backend) and placed on the roofline: achieved GFLOP/s against intensity.
"""),
    code(r"""
shapes = {}                                   # the distinct (input shape, filters) of the separable convs
for name, e in table.items():
    if isinstance(e["layer"], nn.SeparableConv2D):
        shapes.setdefault((tuple(e["input"]), e["layer"].filters), []).append(name)

points = []
for (in_shape, filters), names in shapes.items():
    n, h, w, c = in_shape
    x = rng.standard_normal(in_shape).astype(np.float32)
    dk = rng.standard_normal((3, 3, c, 1)).astype(np.float32)
    pk = rng.standard_normal((1, 1, c, filters)).astype(np.float32)
    # Default arguments bind this shape's arrays to each timed call.
    for kind, run, c_out in (("depthwise", lambda x=x, dk=dk: ops.depthwise_conv2d(x, dk, padding="same",
                                                                                  backend="cpu"), c),
                             ("pointwise", lambda x=x, pk=pk: ops.pointwise_conv2d(x, pk, backend="cpu"), filters)):
        flops, moved = roofline_point(kind, n, h, w, c, c_out, 4)
        seconds = median_time(run)
        points.append({"kind": kind, "shape": f"{n}x{h}x{w}x{c}" + (f"->{c_out}" if kind == "pointwise" else ""),
                       "layers": len(names), "intensity": flops / moved, "gflops": flops / seconds / 1e9})

print(f"{'kind':<10}{'shape':<20}{'flops/byte':>11}{'GFLOP/s':>9}{'roof':>8}{'of roof':>9}  bound")
for p in points:
    roof = min(PEAK, p["intensity"] * BANDWIDTH)
    print(f"{p['kind']:<10}{p['shape']:<20}{p['intensity']:>11.1f}{p['gflops']:>9.1f}{roof:>8.0f}"
          f"{p['gflops'] / roof:>9.0%}  {'memory' if p['intensity'] < RIDGE else 'compute'}")
print(conditions())

fig, ax = plt.subplots(figsize=(8, 5))
intensity = np.logspace(-1, 3, 200)
ax.loglog(intensity, np.minimum(PEAK, intensity * BANDWIDTH), "k-", label="roofline (measured)")
ax.axvline(RIDGE, color="gray", ls=":", lw=1)
for kind, marker in (("depthwise", "o"), ("pointwise", "s")):
    mine = [p for p in points if p["kind"] == kind]
    ax.loglog([p["intensity"] for p in mine], [p["gflops"] for p in mine], marker, ls="", label=kind)
ax.set_xlabel("arithmetic intensity (flops per byte)")
ax.set_ylabel("GFLOP/s")
ax.set_title(f"separable convolutions of small, batch {batch}, forward, {THREADS} threads")
ax.legend()
plt.show()
"""),
    md(r"""
Read it from left to right. The depthwise points all sit at the same intensity, left of the
ridge: memory-bound, whatever their shape, so what helps them is moving fewer bytes (one pass,
contiguous channels) rather than more arithmetic per cycle. The `cpu` backend's depthwise kernels
unroll the 3x3 taps of a row (`backends/cpu/tuned/depthwise_3x3.py`) so that every input row is read
once for all nine taps. The pointwise points move right as the channels grow and cross into the
compute-bound region: there the work is a matrix product, and the best one can do is hand it to
BLAS. Points far below the roof at small shapes pay a per-call overhead (starting threads, Python
between kernels) that the model does not count: at batch 16 a whole layer is a few hundred
microseconds. (A point above the roof means the limits were measured at a busier moment than the
layer was: compare the load averages printed with each.)

## 9.4 Fusing batch normalization and ReLU

Batch norm is a pure bandwidth kernel: per value it does 2 flops, $(x - \mu)\,s + \beta$ with
$s = \gamma / \sqrt{\sigma^2 + \epsilon}$, and moves 8 bytes in float32 (read $x$, write $y$).
A ReLU after it reads $y$ and writes $\max(y, 0)$: 8 more bytes, no useful arithmetic. **Fused**,
the clamp happens as $y$ is written, in registers: one pass, half the bytes. Xception puts a ReLU
after most of its batch norms, so `nn.BatchNormReLU` (and the backend's `batch_norm_relu_*`
kernels, `backends/cpu/tuned/norm_relu.py`) does this in the forward pass, and in the backward pass applies
the ReLU's mask as it reads $dy$.

Here is the unfused pair as two Numba kernels, one pass each:
"""),
    code(r"""
@njit(parallel=True, cache=True)
def bn_apply_pass(x2, mean, scale, beta, y2):
    for r in prange(x2.shape[0]):
        for c in range(x2.shape[1]):
            y2[r, c] = (x2[r, c] - mean[c]) * scale[c] + beta[c]


@njit(parallel=True, cache=True)
def relu_pass(y2, out2):
    zero = y2.dtype.type(0)       # max(v, 0) would mix float32 with an int: slower, not vectorized
    for r in prange(y2.shape[0]):
        for c in range(y2.shape[1]):
            v = y2[r, c]
            out2[r, c] = v if v > zero else zero


def bn_relu_two_passes(x2, mean, scale, beta):
    y2, out2 = np.empty_like(x2), np.empty_like(x2)
    bn_apply_pass(x2, mean, scale, beta, y2)
    relu_pass(y2, out2)
    return out2
"""),
    md(r"""
### Your turn: a fused batch norm + ReLU

Write `bn_relu_rows(x2, mean, scale, beta)` for activations as rows, `x2` of shape
$(N H W, C)$ (a free reshape of NHWC): one `prange` loop over the rows that computes
$v = (x - \mu)\,s + \beta$ and writes $\max(v, 0)$, in that order of operations. The check
compares it with `ops.relu(ops.batch_norm(...))` (NumPy's two passes) and requires **exact**
equality: the same operations in the same order give the same bits, which is how the backend's
fused kernels can replace the pair without changing a single result. (Rewrite the formula as
$x s + (\beta - \mu s)$, or compile with `fastmath=True` so that LLVM fuses the multiply and add
into one rounding, and the bits change.) It also requires one pass: one `prange` loop and no
whole-array `np.maximum` or `np.where`, and the same bits on 1 thread and 2.
"""),
    exercise("nb09", "bn_relu_rows"),
    check(r"""
check_bn_relu_rows(bn_relu_rows)
"""),
    code(r"""
n_bn = (16, 32, 32, 64) if FAST else (64, 32, 32, 128)
x = rng.standard_normal(n_bn).astype(np.float32)
channels = n_bn[3]
gamma, beta = rng.uniform(0.5, 1.5, channels).astype(np.float32), rng.standard_normal(channels).astype(np.float32)
mean, var = rng.standard_normal(channels).astype(np.float32), rng.uniform(0.5, 2, channels).astype(np.float32)
scale = gamma * (1.0 / np.sqrt(var + np.float32(1e-3)))
x2 = x.reshape(-1, channels)
cpu = get_backend("cpu")

variants = {
    "NumPy, two passes (ops, numpy backend)": lambda: ops.relu(ops.batch_norm(x, gamma, beta, mean, var)[0]),
    "Numba, two passes": lambda: bn_relu_two_passes(x2, mean, scale, beta),
    "Numba, fused (yours)": lambda: bn_relu_rows(x2, mean, scale, beta),
    "cpu backend, fused (batch_norm_relu_infer)": lambda: cpu.batch_norm_relu_infer(x, gamma, beta, mean, var, 1e-3),
}
reference = variants["NumPy, two passes (ops, numpy backend)"]().reshape(x2.shape)
print(f"x {'x'.join(map(str, n_bn))} float32: {x.nbytes / 2**20:.0f} MiB "
      f"(L3 {CPU_INFO.get('L3 cache', '?')}); the two passes move {4 * x.nbytes / 2**20:.0f} MiB, the fused one "
      f"{2 * x.nbytes / 2**20:.0f} MiB")
times = {label: median_time(run) for label, run in variants.items()}
for label, run in variants.items():
    same = np.array_equal(np.asarray(run()).reshape(x2.shape), reference)
    print(f"  {label:<45} {times[label] / times['Numba, fused (yours)']:5.2f}x the fused time, "
          f"{2 * x.nbytes / times[label] / 1e9:5.1f} GB/s of the fused bytes, equal to NumPy: {same}")
print(conditions())
"""),
    md(r"""
Where the activations are larger than the last-level cache, the two passes pay DRAM twice and
the ratio approaches 2; where they fit in cache (fast mode's small batch), the second pass is
cheaper and the ratio is smaller, but still above 1. The GB/s column is against the measured copy
bandwidth of 9.2: a kernel near it has nothing left but moving fewer bytes.

The same count of bytes is behind the backend's max pool (`backends/cpu/pool.py`): its forward
pass writes, beside each output, the index of the window's winning tap (one byte), so that the
backward pass reads $dy$ and those taps instead of searching every window of $x$ again, which is
four times the output's size at stride 2.

## 9.5 A pointwise convolution as GEMM tasks

A pointwise convolution is one matrix product: with $X$ the input as rows $(P, C_{in})$,
$P = N H W$, the output is $Y = X W$ (and the backward is $dY W^T$ and $X^T dY$). BLAS (here
OpenBLAS, which NumPy ships) does that near the machine's peak, with **its own threads**. Numba
has its own threads too, and that is the problem:

* **Oversubscription.** Call a multi-threaded BLAS from inside a `prange`, and each of Numba's $T$
  threads asks BLAS for $T$ more: $T^2$ busy threads on $T$ cores, preempting each other.
  Even outside a `prange`, the two pools alternate in one training step (a depthwise kernel, then
  a GEMM); each thread that finishes waits a while for more work (9.6) on a core that the other
  pool now needs.
* **One pool.** The backend's tuned kernels (`backends/cpu/tuned/gemm.py`) therefore cuts every product into $K$
  *tasks*, a number that depends on the shapes alone, never on the threads (task `k` takes rows
  `k * P // K` to `(k + 1) * P // K` of $X$ and $Y$; a short product is cut along $Y$'s columns
  instead), runs them in one `prange`, and has each task call BLAS **single-threaded** on its
  own block (`threadpoolctl` sets BLAS's threads; the backend calls OpenBLAS's own setter, which
  is faster). All the work then runs on Numba's threads, and since each element of $Y$ is
  computed by one task with one GEMM, the result is the same for any thread count. (The filter
  gradient $X^T dY$ sums over the rows: there each task's partial sum is added in task order,
  as in 9.8.)

`threadpoolctl` shows which thread pools this process has loaded:
"""),
    code(r"""
for info in threadpool_info():
    print(f"{info['user_api']:<8}{info['internal_api']:<10}{info['num_threads']:>3} threads  "
          f"{Path(info['filepath']).name}")
print(f"Numba: {numba.get_num_threads()} threads, threading layer {numba.threading_layer()}")
"""),
    md(r"""
Inside a Numba kernel, `np.dot` on matrices is compiled to a BLAS call only when SciPy is
installed (Numba borrows SciPy's BLAS wrappers), and this project does not depend on SciPy. So
`exercises/blas.py` offers `matmul_into(a, b, out)`, which computes `out[...] = a @ b` from inside
a kernel by calling NumPy's own OpenBLAS on the arrays' addresses, the way the backend does
(`backends/cpu/tuned/blas.py`). A slice of rows `x2[first:last]` is passed without a copy.

### Your turn: the pointwise convolution as GEMM tasks

Write `pointwise_chunked(x2, w2, chunks)`: `prange` over the `chunks` tasks, task `k` calling
`matmul_into` on rows `k * P // chunks` to `(k + 1) * P // chunks` of `x2` and of the output.
The check runs it with BLAS held to one thread, compares it with the float64 product (to $10^{-12}$
in float64 and $10^{-5}$ in float32, relative), requires the same bits on 1 and 2 threads, and
reads your code: a `prange` over the tasks, and a `matmul_into` call inside it.
"""),
    exercise("nb09", "pointwise_chunked"),
    check(r"""
check_pointwise_chunked(pointwise_chunked)
"""),
    md(r"""
Now the same product four ways: one NumPy GEMM (BLAS's own threads), your tasks with BLAS held to
one thread, your tasks with BLAS left at its default (oversubscribed: $T$ Numba threads each
calling a $T$-thread BLAS), and the `cpu` backend's pointwise convolution.
"""),
    code(r"""
rows = (16 if FAST else 64) * 28 * 28
k_in, k_out, tasks = 128, 128, 8
x2 = rng.standard_normal((rows, k_in)).astype(np.float32)
w2 = rng.standard_normal((k_in, k_out)).astype(np.float32)


times = {"one GEMM, BLAS's own threads (x2 @ w2)": median_time(lambda: x2 @ w2)}
# threadpoolctl's limit costs a fraction of a millisecond per use (it looks at every loaded
# library), so it is set once around the timing, not around every call.
with threadpool_limits(limits=1, user_api="blas"):
    times["tasks in a prange, 1 BLAS thread each"] = median_time(lambda: pointwise_chunked(x2, w2, tasks))
times[f"tasks in a prange, {THREADS} BLAS threads each"] = median_time(lambda: pointwise_chunked(x2, w2, tasks))
times["cpu backend (ops.pointwise_conv2d)"] = median_time(
    lambda: ops.pointwise_conv2d(x2[None, None], w2[None, None], backend="cpu"))
one_gemm = times["one GEMM, BLAS's own threads (x2 @ w2)"]
flops = 2 * rows * k_in * k_out
print(f"{rows} x {k_in} -> {k_out}, float32, {tasks} tasks:")
for label, seconds in times.items():
    print(f"  {label:<45} {seconds / one_gemm:5.2f}x the one GEMM's time, "
          f"{flops / seconds / 1e9:6.1f} GFLOP/s ({flops / seconds / 1e9 / PEAK:.0%} of the FMA peak)")
print(conditions())


def on_threads(run, n):
    # run() with Numba's and BLAS's threads both set to n, then back.
    before = numba.get_num_threads()
    npxception.set_num_threads(n)
    try:
        return run()
    finally:
        npxception.set_num_threads(before)


def tasks_one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        return pointwise_chunked(x2, w2, tasks)


if THREADS > 1:
    print("same bits on 1 and", THREADS, "threads: tasks",
          np.array_equal(on_threads(tasks_one_blas_thread, 1), on_threads(tasks_one_blas_thread, THREADS)),
          "| one multi-threaded GEMM", np.array_equal(on_threads(lambda: x2 @ w2, 1),
                                                       on_threads(lambda: x2 @ w2, THREADS)))
"""),
    md(r"""
The backend's own measurements on a quiet 2-core machine had its tasks within a few percent of
one multi-threaded GEMM over all the pointwise convolutions of a `paper` step
(`benchmarks/results/roofline_cpu.md`). On a shared machine each variant's median can land on a
different moment of load, so read these ratios with the load average beside them; the
oversubscribed variant is the one that suffers most when other programs run, since with more
threads than cores a thread holding part of a BLAS call is preempted while the others wait for
it. (Inside a step the backend does not use threadpoolctl: `runtime.single_threaded_blas` calls
OpenBLAS's own thread setter, about a microsecond.)

What the tasks guarantee whatever the load is the last line. Whether one multi-threaded GEMM
gives the same bits on 1 and 2 threads depends on how the BLAS splits the work for that shape and
thread count (OpenBLAS gave different bits on 1444 x 728 x 728, `docs/performance.md`); the tasks
give the same bits by construction.

## 9.6 What idle threads do: spin-waiting

A `prange` loop ends with a barrier; then Numba's worker threads (OpenMP's, on most Linux
installs) wait for the next parallel loop. They can **sleep**, which frees the core but costs a
wake-up by the operating system at the next loop (tens of microseconds), or **spin**, checking
for work in a busy loop, which answers in well under a microsecond but burns a core that another
program (or the other thread pool, 9.5) could have used. OpenMP's `OMP_WAIT_POLICY` chooses:
`PASSIVE` sleeps, `ACTIVE` spins; GNU OpenMP's `GOMP_SPINCOUNT` spins that many times before it
sleeps. A training step calls hundreds of kernels with a little Python between each, so
`npxception/backends/cpu/runtime.py` sets `PASSIVE` with 30,000 spins (`docs/performance.md` says how
that was measured on whole steps): long enough to bridge the Python between two kernels, short
enough to let the cores go when the step is over. OpenMP reads them once, when the threads start,
so each policy below runs in a process of its own: a tiny parallel kernel called again and again
after a pause of Python work, timing each call (the median is printed) and counting the cores the
process kept busy (CPU time over wall time).
"""),
    code(r"""
CHILD = r'''
import resource, sys, time
import numpy as np
from numba import njit, prange, threading_layer

@njit(parallel=True, cache=True)
def touch(a):
    for i in prange(a.size):
        a[i] += 1.0

def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

a = np.zeros(4096)
touch(a)
for calls, gap_us in ((1000, 100), (150, 2000)):
    start, cpu, times = time.perf_counter(), cpu_seconds(), []
    for _ in range(calls):
        end = time.perf_counter() + gap_us * 1e-6
        while time.perf_counter() < end:      # Python work between two kernels
            pass
        before = time.perf_counter()
        touch(a)
        times.append(time.perf_counter() - before)
    wall = time.perf_counter() - start
    print(threading_layer(), gap_us, sorted(times)[calls // 2] * 1e6, (cpu_seconds() - cpu) / wall)
'''
folder = Path(tempfile.mkdtemp())
(folder / "spin_child.py").write_text(CHILD)
policies = {"sleep at once (PASSIVE, 0 spins)": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"},
            "the backend's (PASSIVE, 30,000 spins)": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "30000"},
            "spin for good (ACTIVE)": {"OMP_WAIT_POLICY": "ACTIVE"}}
print(f"{'policy':<40}{'pause':>9}{'median call':>14}{'cores busy':>12}")
for label, settings in policies.items():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(settings, NUMBA_NUM_THREADS=str(THREADS))
    out = subprocess.run([sys.executable, str(folder / "spin_child.py")], env=env, capture_output=True,
                         text=True, check=True).stdout
    for line in out.split("\n")[:2]:
        layer, gap_us, call_us, busy = line.split()
        print(f"{label:<40}{gap_us + ' us':>9}{float(call_us):>11.1f} us{float(busy):>12.2f}")
print(f"(Numba's threading layer: {layer}; the wait policy applies to 'omp' only)  {conditions()}")
"""),
    md(r"""
What to look for depends on the machine. On a quiet one, after the short pause sleeping threads
must be woken for every call while spinning ones are still awake, so the two spinning policies
have the cheaper calls; after the long pause (longer than 30,000 spins) the backend's threads have
gone to sleep like the first policy's, while `ACTIVE` keeps every thread spinning, a core each,
doing nothing ("cores busy" counts it). On a machine that other programs load, spinning can turn
against you: a thread that spins uses up its share of a core, the scheduler runs another program
in its place, and the next kernel waits for it to be scheduled again, a whole time slice
(milliseconds), while a thread that slept is woken at once. That is the trade-off behind a short
spin: cheap calls within a training step, and no core held against the rest of the machine.
With the TBB or workqueue threading layers the three policies look alike: those variables are
OpenMP's.

## 9.7 im2col in blocks that stay in cache

A 3x3 convolution with $C_{in}$ and $C_{out}$ channels is a GEMM too: copy every output pixel's
receptive field into one row of a matrix, **im2col**, $(P, 9 C_{in})$, and multiply it by the
weights as a $(9 C_{in}, C_{out})$ matrix. Built whole, that matrix is 9 times the input: it is
written to memory, then read back by the GEMM. Built in blocks of a few hundred rows, inside each
GEMM task, the block is written to a buffer that stays in the core's L2 cache and read from there
at once: the same arithmetic, a ninth of the traffic. `backends/cpu/tuned/conv.py` does this with blocks
of 256 rows (for the paper's second stem conv, 4 x 149 x 149 x 32 -> 64, the forward went from
30.7 to 16.9 ms on the 2-core machine of its docstring). A minimal version, "valid" padding and
stride 1:
"""),
    code(r"""
def im2col_whole(x, kh=3, kw=3):
    # (P, kh*kw*C): every output pixel's window, taps (p, q) then channels, as w.reshape expects.
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))   # (N, Ho, Wo, C, kh, kw)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * x.shape[3])    # the copy


@njit(cache=True)
def fill_block(x, kh, kw, ho, wo, first, last, block):
    # Rows first..last-1 of im2col(x), into block[0 : last - first].
    cin = x.shape[3]
    for m in range(first, last):
        n, rest = m // (ho * wo), m % (ho * wo)
        i, j = rest // wo, rest % wo
        for p in range(kh):
            for q in range(kw):
                base = (p * kw + q) * cin
                for c in range(cin):
                    block[m - first, base + c] = x[n, i + p, j + q, c]


@njit(parallel=True, cache=True)
def conv_in_blocks(x, w2, kh, kw, tasks, block_rows):
    n, h, width, _ = x.shape
    ho, wo = h - kh + 1, width - kw + 1
    total = n * ho * wo
    y = np.empty((total, w2.shape[1]), dtype=x.dtype)
    for t in prange(tasks):
        block = np.empty((block_rows, w2.shape[0]), dtype=x.dtype)   # this task's buffer, reused
        start, stop = t * total // tasks, (t + 1) * total // tasks
        for b0 in range(start, stop, block_rows):
            b1 = min(b0 + block_rows, stop)
            fill_block(x, kh, kw, ho, wo, b0, b1, block)
            matmul_into(block[:b1 - b0], w2, y[b0:b1])
    return y.reshape(n, ho, wo, w2.shape[1])


side, cin, cout = 32, 32, 64
xc = rng.standard_normal((16 if FAST else 64, side + 2, side + 2, cin)).astype(np.float32)
wc = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
wc2 = wc.reshape(9 * cin, cout)
expected = ops.conv2d(xc, wc)                                        # the NumPy reference


variants = {"whole im2col, then one GEMM": lambda: (im2col_whole(xc) @ wc2).reshape(expected.shape),
            "blocks of 256 rows in the tasks": lambda: conv_in_blocks(xc, wc2, 3, 3, 8, 256),
            "cpu backend (ops.conv2d)": lambda: ops.conv2d(xc, wc, backend="cpu")}
cols_mib = expected.shape[0] * side * side * 9 * cin * 4 / 2**20
print(f"x {'x'.join(map(str, xc.shape))} -> {cout} channels: im2col whole {cols_mib:.0f} MiB, one block "
      f"{256 * 9 * cin * 4 / 2**10:.0f} KiB (L2 {CPU_INFO.get('L2 cache', '?')}, L3 {CPU_INFO.get('L3 cache', '?')})")
times, errors = {}, {}
for label, run in variants.items():
    blas_threads = 1 if label.startswith("blocks") else None         # the tasks: one BLAS thread each
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        times[label] = median_time(run)
        errors[label] = np.abs(run() - expected).max() / np.abs(expected).max()
for label, error in errors.items():
    print(f"  {label:<35} {times[label] / times['whole im2col, then one GEMM']:5.2f}x the whole im2col's time"
          f" (relative error {error:.0e})")
print(conditions())
"""),
    md(r"""
Where the whole matrix still fits in the last-level cache (compare the sizes printed above; fast
mode's batch is small), building it whole costs little and the blocks' many short GEMM calls can
even lose; the blocks win once the whole matrix is well beyond it (full mode's batch makes it
four times larger) and in the paper's network.

The backend's version adds padding, strides and dilation, a filter gradient whose tasks add each
block's $\text{block}^T dY$ into the task's partial sum (the GEMM's `beta = 1`), and, for stride
1, the input gradient as the forward convolution of $dy$ with the flipped kernel through the same
blocks.

## 9.8 The same bits on any number of threads

Every kernel of the `cpu` backend gives bitwise the same result on 1 thread or 16, for two
reasons:

1. **Each output element is computed by one thread, in a fixed order.** A forward pass, an input
   gradient, a GEMM task: the `prange` splits the outputs, never the sum inside one of them, and
   each sum runs through its terms in the same order whichever thread runs it.
2. **A reduction is cut into fixed chunks, and the chunks are added in a fixed order.** A filter
   gradient or a batch-norm statistic sums over every pixel. Summed by "as many chunks as
   threads", the chunk boundaries, and so the rounding, would move with the thread count.
   Instead the number of chunks depends on the shape alone (`backends/cpu/_chunks.py`: one per
   row of work, at most 32), each chunk sums into its own partial, and the partials are added in chunk
   order. Float addition is not associative, so a different order would give different bits; the
   same order gives the same bits, whichever thread summed which chunk, and whenever.

Batch norm's statistics are such a reduction, in float64 (`backends/cpu/norm.py`), because a
float32 running sum of tens of thousands of values loses several of float32's seven digits.

### Your turn: batch norm's sums in fixed chunks

Write `channel_sums(x2, chunks)`: for `x2` $(R, C)$, the per-channel sums of $x$ and of $x^2$ as
a $(2, C)$ float64 array. `prange` over the chunks, chunk `k` owning rows `k * R // chunks` to
`(k + 1) * R // chunks` and a float64 partial of its own; then add the partials in chunk order.
The check compares with NumPy's float64 sums (relative $10^{-10}$, which a float32 accumulator
misses by orders of magnitude), requires the same bits on 1 and 2 threads, refuses a `+=` into an
element that several iterations update (a race) and any use of the thread count
(`numba.get_num_threads`) in the split.
"""),
    exercise("nb09", "channel_sums"),
    check(r"""
check_channel_sums(channel_sums)
"""),
    md(r"""
And the whole training step: two identical models (the same seed, so the same weights and dropout
masks), one forward and backward each, one on 1 thread and one on all of them. Every gradient is
compared bit for bit.
"""),
    code(r"""
def gradients_on(threads):
    twin = Xception(config, backend="cpu", seed=1)
    logits = on_threads(lambda: twin.forward(images, True), threads)
    dlogits = twin.backend.softmax_cross_entropy_backward(1.0, logits, labels, 0.0)
    on_threads(lambda: twin.backward(dlogits, input_grad=False), threads)
    return {key: g.copy() for key, (_, g) in twin.trainable().items()}


one, many = gradients_on(1), gradients_on(THREADS)
differ = [key for key in one if not np.array_equal(one[key], many[key])]
print(f"{len(one)} gradients, 1 thread against {THREADS}: {len(one) - len(differ)} bitwise equal"
      + (f"; differ: {differ[:5]}" if differ else ""))
"""),
    md(r"""
## 9.9 Against PyTorch

Finally the whole step against PyTorch, on the same threads: `benchmarks/torch_idiomatic.py` is
Xception as a PyTorch user writes it (stock `nn.Conv2d` with `groups=C` for the depthwise layers,
`nn.BatchNorm2d`, in-place ReLUs), in `channels_last`, PyTorch's faster layout on the CPU, with its
own SGD with momentum. The rounds alternate the two, so that a change in the machine's load falls
on both. Both run in this one process, each with its own threads; `benchmarks/bench_model.py` is
the careful version (each variant in a process of its own, several models and layouts, memory).
"""),
    code(r"""
try:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(npxception.__file__).resolve().parents[1] / "benchmarks"))
    from torch_idiomatic import IdiomaticXception
except ImportError as error:                  # PyTorch, or the benchmarks folder, is optional here
    print("no PyTorch comparison:", error)
    torch = None

if torch is not None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    torch_model = IdiomaticXception(config).train().to(memory_format=torch.channels_last)
    torch_x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=torch.channels_last)
    torch_labels = torch.from_numpy(labels)
    optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.01, momentum=0.9)

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(torch_model(torch_x), torch_labels).backward()
        optimizer.step()

    ours, theirs = [], []
    for round_ in range(3 if FAST else 5):
        order = [(ours, train_step), (theirs, torch_step)]
        for times_, step in order if round_ % 2 == 0 else order[::-1]:   # alternate who goes first
            times_.append(median_time(step))
    ours_ms, theirs_ms = 1e3 * np.median(ours), 1e3 * np.median(theirs)
    print(f"small, batch {batch}, {THREADS} threads: ours {ours_ms:.1f} ms per step, PyTorch {torch.__version__} "
          f"(idiomatic, channels_last) {theirs_ms:.1f} ms: ours takes {ours_ms / theirs_ms:.2f}x PyTorch's time")
    print(conditions())
"""),
    md(r"""
A ratio below 1 means ours is faster. With few images per step (fast mode's batch of 16) the
per-call overheads of both sides weigh more, and the ratio moves; `benchmarks/results/model_cpu.md`
has the full-size measurement, each variant in its own process.

## Summary

* Profile first: per-layer times say where a step goes; the roofline says how far each layer is
  from what the machine allows, from two measured numbers and the layer's shapes.
* Depthwise convolutions and batch norm are memory-bound: move fewer bytes (fuse passes, read
  each row once, contiguous channels). Pointwise convolutions are compute-bound: use BLAS.
* One pool of threads: BLAS single-threaded inside Numba's `prange` tasks, no $T \times T$
  oversubscription; idle threads spin briefly, then sleep.
* Build big intermediates (im2col) in blocks that stay in cache, inside the tasks that use them.
* Split outputs, never one output's sum, and cut reductions into chunks fixed by the shape, added
  in a fixed order: the same bits on any number of threads.

## Exercises

1. Compute `roofline_point` for `paper`'s pointwise layers (728 -> 728 on 19 x 19, batch 4; 1536
   -> 2048 on 10 x 10) and its 37 x 37 x 728 depthwise layer. Which are compute-bound on this
   machine? At how many channels does a pointwise convolution cross the ridge point?
2. Time `bn_relu_rows` against `bn_relu_two_passes` on activations four times larger than the
   L3 cache, then four times smaller. Explain the two ratios with the bytes moved.
3. Write the fused backward pass, `dx = dy * s` where $y > 0$ and 0 elsewhere (inference-mode
   batch norm), in one pass that reads `dy` and the saved `y`. How many bytes does it move
   against batch norm's backward followed by ReLU's?
4. Run 9.5's oversubscribed variant while another program keeps one core busy (for example
   `python -c "while True: pass"` in a terminal). What happens to each of the four ratios?
5. Vary `block_rows` in `conv_in_blocks` from 16 to 8192 and plot the time. Where does the
   buffer leave the L2 cache, and where does a block get too short for BLAS to run at full speed?
6. Make `channel_sums` use `numba.get_num_threads()` chunks and show that its bits now change
   between 1 and 2 threads. The grader refuses it from the source alone; would its comparison of
   1 thread with 2 always catch it too? (Try inputs that are small integers.)
7. (A small project) Profile one `paper` step (batch 4) with `instrument` and place its layers on
   the roofline as in 9.3, then compare with `benchmarks/results/roofline_cpu.md`.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
