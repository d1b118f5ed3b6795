"""Notebook 4: CUDA kernels with Numba, on a GPU or in the CUDA simulator."""

from cells import check, code, exercise, md

FILENAME = "04_cuda_kernels.ipynb"

CELLS = [
    md(r"""
# 4. CUDA kernels with Numba

A GPU runs thousands of threads at once. Numba compiles Python functions marked `@cuda.jit`
into GPU kernels, so the same language that wrote notebook 3's CPU loops writes GPU code too.
This notebook writes three kernels, each teaching one idea:

1. an element-wise ReLU: **threads, blocks and the grid**;
2. a depthwise convolution: **which thread gets which element**, and why neighbouring threads
   should read neighbouring addresses (**coalescing**);
3. the pointwise convolution as a **tiled matrix product** in shared memory;
4. the depthwise filter gradient as a **reduction** in shared memory, and what a missing barrier
   does to it.

**No GPU? No problem.** Without an NVIDIA driver the first cell switches on Numba's **CUDA
simulator**, which runs every GPU thread as a Python thread on the CPU, so the kernels' indexing,
bounds checks, shared memory and `syncthreads` barriers (a thread waits there until every thread
of its block arrives) are exercised and the results checked against NumPy. What the simulator
does **not** model: warps and how the hardware schedules their threads, memory coalescing, caches,
occupancy or timing. Its thread scheduling is Python's, not a GPU's, so a race that a GPU would expose may
stay hidden, and every timing it gives is meaningless. It is also slow, so it gets tiny arrays.
On a machine with a GPU the same notebook runs the same kernels on it, at larger sizes.

Two "your turn" exercises (a grid-stride loop, the filter-gradient reduction) are checked against
NumPy; more exercises close the notebook.

**Runtime:** measured 41 s in the simulator on 2 CPU cores of a busy shared machine (fast mode is
the same: the simulator always gets tiny arrays).
"""),
    code(r"""
import os
import shutil

# Numba reads this when it is first imported, so it must be decided before `import numba`.
HAS_GPU_DRIVER = os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None
if not HAS_GPU_DRIVER:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
"""),
    code(r"""
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from numba import cuda

from npxception import ops

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
rng = np.random.default_rng(0)
print("running on:", "the CUDA simulator (CPU)" if SIM else cuda.get_current_device().name)
"""),
    md(r"""
## 4.1 Threads, blocks, grid

A kernel launch `kernel[blocks, threads_per_block](args)` starts `blocks x threads_per_block`
threads, all running the same function. Threads are grouped in **blocks** (up to 1024 threads;
the threads of a block can share fast on-chip memory and wait for each other), and the blocks form
the **grid**. The hardware runs a block's threads in **warps** of 32, issuing one instruction for
the whole warp at a time. Before the Volta generation (2017) the 32 threads of a warp ran in
lockstep; since Volta every thread has its own program counter (*independent thread scheduling*),
so a warp's threads can diverge and interleave, and code must not assume they move together: share
data between threads only across a barrier (`cuda.syncthreads()`, or `cuda.syncwarp()` within a
warp).

Each thread finds out who it is from `cuda.threadIdx`, `cuda.blockIdx` and `cuda.blockDim`;
`cuda.grid(1)` is the usual shorthand for its global index
`blockIdx.x * blockDim.x + threadIdx.x`. The grid is rounded up to whole blocks, so the last block
has threads past the end of the array: every kernel needs a bounds check.
"""),
    code(r"""
@cuda.jit
def relu_kernel(x, y):
    i = cuda.grid(1)                  # this thread's global index
    if i < x.size:                    # the last block may overhang the array
        y[i] = max(x[i], np.float32(0.0))   # a float32 zero: 0.0 would be float64


n = 1000
threads_per_block = 128
blocks = math.ceil(n / threads_per_block)
x = rng.standard_normal(n).astype(np.float32)
y = np.zeros_like(x)
relu_kernel[blocks, threads_per_block](x, y)
print(f"{blocks} blocks x {threads_per_block} threads = {blocks * threads_per_block} threads "
      f"for {n} elements; max |kernel - ops.relu| = {np.abs(y - ops.relu(x)).max()}")
"""),
    md(r"""
### Your turn: a grid-stride loop

A grid need not have a thread per element. In a **grid-stride loop** each thread handles elements
`i, i + G, i + 2G, ...`, where $G$ = `cuda.gridsize(1)` is the number of threads in the whole grid,
so a fixed, modest grid covers an array of any length (and each thread amortizes its start-up over
several elements). Write `axpy_kernel`, computing `out = a * x + y` that way; the check launches it
with grids both smaller and larger than the arrays (target: a relative error of $10^{-6}$, float32
rounding). It also checks the split: the loop must step by the whole grid (in the simulator it
counts which thread computed which element: each element once, no thread more than its share).
"""),
    exercise("nb04", "axpy_kernel", "axpy"),
    check(r"""
from exercises.checks import check_axpy, check_filter_grad_cuda

check_axpy(axpy_kernel)
"""),
    md(r"""
(Passing NumPy arrays copies them to the GPU and back on every launch. Real code keeps tensors on
the device with `cuda.to_device` and copies results back once, as section 4.4 does and as this
project's `cuda` backend does for a whole training step.)

## 4.2 A depthwise convolution, and coalescing

One thread per output element `y[n, i, j, c]`: the thread turns its flat index into four indices
and sums its 3x3 window. The choice that matters is **which index varies fastest between
neighbouring threads**. Here it is the channel `c`, the last (contiguous) axis of NHWC, so the 32
threads of a warp read 32 consecutive floats at every tap.
"""),
    code(r"""
@cuda.jit
def depthwise_kernel(x, w, y):
    # x (N, H, W, C), w (kh, kw, C, 1) float32, 'valid' padding; y (N, Ho, Wo, C).
    idx = cuda.grid(1)
    n_img, ho, wo, c_in = y.shape
    if idx >= n_img * ho * wo * c_in:
        return
    c = idx % c_in                                    # fastest: neighbouring threads, neighbouring channels
    j = (idx // c_in) % wo
    i = (idx // (c_in * wo)) % ho
    n = idx // (c_in * wo * ho)
    acc = np.float32(0.0)
    for p in range(w.shape[0]):
        for q in range(w.shape[1]):
            acc += x[n, i + p, j + q, c] * w[p, q, c, 0]
    y[n, i, j, c] = acc


x = rng.standard_normal((1, 6, 6, 8) if SIM else (8, 58, 58, 256)).astype(np.float32)
w = rng.standard_normal((3, 3, x.shape[3], 1)).astype(np.float32)
y = np.zeros((x.shape[0], x.shape[1] - 2, x.shape[2] - 2, x.shape[3]), dtype=np.float32)
threads_per_block = 64 if SIM else 256
depthwise_kernel[math.ceil(y.size / threads_per_block), threads_per_block](x, w, y)
print(f"{y.size} threads; max |kernel - ops.depthwise_conv2d| = "
      f"{np.abs(y - ops.depthwise_conv2d(x, w)).max():.1e}")
"""),
    md(r"""
GPU memory is read in aligned 32-byte **sectors**. When the 32 threads of a warp read 32
consecutive float32 values (128 bytes), the hardware fetches 4 sectors and every byte is used.
Had the width index `j` varied fastest instead, neighbouring threads would read addresses $4C$
bytes apart, one sector each, and use 4 of its 32 bytes. Here are the addresses one warp reads at
tap (0, 0) for an Xception-sized layer (19x19x728), under both choices:
"""),
    code(r"""
def warp_addresses(channel_fastest, height=19, width=19, channels=728, itemsize=4):
    # Byte offsets that lanes 0..31 of warp 0 read at tap (0, 0), for n = 0.
    lanes = np.arange(32)
    if channel_fastest:
        c, j, i = lanes % channels, (lanes // channels) % width, lanes // (channels * width)
    else:
        j, i, c = lanes % width, (lanes // width) % height, lanes // (width * height)
    return ((i * width + j) * channels + c) * itemsize


fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
fetched, used = [], []
for fastest, label in [(True, "channel index fastest"), (False, "width index fastest")]:
    addresses = warp_addresses(fastest)
    sectors = len(np.unique(addresses // 32))
    fetched.append(32 * sectors)
    used.append(4 * len(addresses))
    axes[0].plot(np.arange(32), addresses + 1, "o", ms=4, label=f"{label}: {sectors} sectors")
axes[0].set_yscale("log")
axes[0].set_xlabel("thread (lane) in the warp")
axes[0].set_ylabel("byte address read (+1, log scale)")
axes[0].legend()
positions = np.arange(2)
axes[1].bar(positions - 0.2, fetched, 0.4, label="bytes fetched from memory")
axes[1].bar(positions + 0.2, used, 0.4, label="bytes the warp needs")
axes[1].set_xticks(positions, ["channel fastest", "width fastest"])
axes[1].set_ylabel("bytes per warp read")
axes[1].legend()
for k in range(2):
    axes[1].text(k - 0.2, fetched[k], f"{used[k] / fetched[k]:.0%} used", ha="center", va="bottom")
fig.suptitle("One warp's 32 reads of an NHWC tensor, 19x19x728 float32", y=1.03)
plt.tight_layout()
plt.show()
"""),
    md(r"""
## 4.3 The pointwise convolution as a tiled GEMM

A pointwise convolution is $Y = XW$ with $X$ of shape $(NHW, C_\text{in})$. The obvious kernel
gives each thread one output $Y[r, o]$ and a loop over $k$ reading $X[r, k]$ and $W[k, o]$ from
global memory: $2 C_\text{in}$ loads for $2 C_\text{in}$ flops, and global memory is far slower
than arithmetic.

**Tiling** cuts $Y$ into $T \times T$ tiles, one block of $T \times T$ threads per tile. The block
walks along $k$ in steps of $T$: its threads together copy a $T \times T$ tile of $X$ and one of
$W$ into **shared memory** (on-chip, shared by the block), wait for each other
(`cuda.syncthreads()`), and then each thread does $T$ multiply-adds from shared memory. Every
value fetched from global memory is used $T$ times instead of once. The picture shows what the
highlighted block reads to compute its tile:
"""),
    code(r"""
def show_tiling(rows=12, inner=8, cols=8, tile=4, block=(1, 1)):
    # The three matrices in one axes, so that a matrix element has the same size in all of them.
    br, bc = block
    gap = 3
    panels = [("X: pixels x Cin", rows, inner, 0, (br * tile, 0, tile, inner)),
              ("W: Cin x Cout", inner, cols, inner + gap, (0, bc * tile, inner, tile)),
              ("Y = X W: a block per tile", rows, cols, inner + cols + 2 * gap, (br * tile, bc * tile, tile, tile))]
    fig, ax = plt.subplots(figsize=(11, 5))
    for title, h, wd, left, (r0, c0, rh, cw) in panels:
        ax.add_patch(Rectangle((left, 0), wd, h, facecolor="white", edgecolor="k", lw=1.2))
        for k in range(tile, h, tile):
            ax.plot([left, left + wd], [k, k], color="k", lw=1.2)
        for k in range(tile, wd, tile):
            ax.plot([left + k, left + k], [0, h], color="k", lw=1.2)
        ax.add_patch(Rectangle((left + c0, r0), cw, rh, color="tab:orange", alpha=0.6))
        ax.text(left + wd / 2, -0.6, title, ha="center", va="bottom", fontsize=10)
    ax.set_xlim(-0.5, inner + 2 * cols + 2 * gap + 0.5)
    ax.set_ylim(rows + 0.5, -2.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"Tile size T = {tile}: block {block} loads a row strip of X and a column strip of W, "
                 "one T x T piece at a time", fontsize=10)
    plt.tight_layout()
    plt.show()


show_tiling()
"""),
    code(r"""
TILE = 8  # threads per block = TILE x TILE; a compile-time constant, as shared arrays need
ZERO = np.float32(0.0)  # globals are frozen into the kernel as constants


@cuda.jit
def gemm_tiled(a, b, c):
    # c = a @ b for float32 a (M, K), b (K, N); block (TILE, TILE) computes one tile of c.
    a_tile = cuda.shared.array((TILE, TILE), dtype=np.float32)
    b_tile = cuda.shared.array((TILE, TILE), dtype=np.float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx                 # tx fastest along c's rows: coalesced
    acc = ZERO
    for start in range(0, a.shape[1], TILE):
        # Each thread copies one element of each tile (zero outside the matrices).
        a_tile[ty, tx] = a[row, start + tx] if row < a.shape[0] and start + tx < a.shape[1] else ZERO
        b_tile[ty, tx] = b[start + ty, col] if start + ty < b.shape[0] and col < b.shape[1] else ZERO
        cuda.syncthreads()                            # the tiles are complete
        for k in range(TILE):
            acc += a_tile[ty, k] * b_tile[k, tx]
        cuda.syncthreads()                            # done reading before the next copy
    if row < c.shape[0] and col < c.shape[1]:
        c[row, col] = acc


def pointwise_cuda(x, w):
    # x (N, H, W, Cin), w (1, 1, Cin, Cout) -> (N, H, W, Cout), as one tiled GEMM.
    a = np.ascontiguousarray(x.reshape(-1, x.shape[3]))
    b = np.ascontiguousarray(w[0, 0])
    c = np.zeros((a.shape[0], b.shape[1]), dtype=np.float32)
    grid = (math.ceil(b.shape[1] / TILE), math.ceil(a.shape[0] / TILE))   # (x: columns, y: rows)
    gemm_tiled[grid, (TILE, TILE)](a, b, c)
    return c.reshape(*x.shape[:3], b.shape[1])


x = rng.standard_normal((1, 5, 5, 12) if SIM else (8, 19, 19, 728)).astype(np.float32)
w = rng.standard_normal((1, 1, x.shape[3], 20 if SIM else 728)).astype(np.float32)
y = pointwise_cuda(x, w)
print(f"Y {y.shape}; max relative difference from ops.pointwise_conv2d: "
      f"{np.abs(y - ops.pointwise_conv2d(x, w)).max() / np.abs(y).max():.1e}")
"""),
    md(r"""
The shapes were chosen so that no dimension is a multiple of the tile: the zero-filled edges of
the tiles are what make that work. What tiling saves, counted for one of Xception's middle-flow
pointwise layers at batch 32 (19x19x728 to 728):
"""),
    code(r"""
rows, inner, cols = 32 * 19 * 19, 728, 728
for tile in (1, 8, 16, 32):
    loads = 2 * rows * cols * inner / tile            # tile = 1: the untiled kernel
    print(f"tile {tile:>2}: {loads / 1e9:6.2f} G global loads "
          f"({2 * rows * cols * inner / loads:.0f}x fewer than untiled)")
"""),
    md(r"""
Production GEMMs (cuBLAS) go further: each thread computes a small block of outputs in registers,
tiles are double-buffered, and tensor cores do the multiply-adds. The tiled kernel is the idea
they all start from.

## 4.4 Keeping data on the device, and timing

`cuda.to_device` copies an array to GPU memory once; kernels then take the device array, and
`copy_to_host` brings a result back. Kernel launches are **asynchronous**: the Python call returns
at once, so a timing must wait with `cuda.synchronize()`. In the simulator the numbers below only
show how slow it is to emulate a GPU with Python threads; on a GPU they are real.
"""),
    code(r"""
shape = (1, 6, 6, 8) if SIM else (32, 21, 21, 728)
x_host = rng.standard_normal(shape).astype(np.float32)
w_host = rng.standard_normal((3, 3, shape[3], 1)).astype(np.float32)
x_dev, w_dev = cuda.to_device(x_host), cuda.to_device(w_host)
y_dev = cuda.device_array((shape[0], shape[1] - 2, shape[2] - 2, shape[3]), dtype=np.float32)
threads_per_block = 64 if SIM else 256
launch = depthwise_kernel[math.ceil(y_dev.size / threads_per_block), threads_per_block]

launch(x_dev, w_dev, y_dev)                           # the first launch compiles
cuda.synchronize()
repeats = 2 if SIM else 20
start = time.perf_counter()
for _ in range(repeats):
    launch(x_dev, w_dev, y_dev)
cuda.synchronize()
per_launch = (time.perf_counter() - start) / repeats
y_host = y_dev.copy_to_host()
print(f"{shape} depthwise on {'the simulator' if SIM else 'the GPU'}: {per_launch * 1e3:.2f} ms "
      f"per launch; max |result - ops| = {np.abs(y_host - ops.depthwise_conv2d(x_host, w_host)).max():.1e}")
start = time.perf_counter()
reference = ops.depthwise_conv2d(x_host, w_host)
print(f"the NumPy reference on the CPU: {(time.perf_counter() - start) * 1e3:.2f} ms")
"""),
    md(r"""
## 4.5 A reduction: the depthwise filter gradient

The filter gradient $dw[p,q,c] = \sum_{n,i,j} x[n,i+p,j+q,c]\, dy[n,i,j,c]$ is a sum over
every pixel, the same reduction that raced in notebook 3. On a GPU the standard shape is: one
**block per output entry** (here per tap and channel), its threads each sum a strided share of the
pixels into a register, write that partial sum to shared memory, and then the block adds the
partials in a **tree**: thread $t < 16$ adds element $t + 16$ to element $t$, then $t < 8$ adds
$t + 8$, and so on, with a barrier between levels. The order of the additions is fixed by the
shape alone, so the result is the same bits on every run (the project's `cuda` backend also uses
fixed-order reductions, for that reason).

### Your turn: the reduction kernel

Write `filter_grad_kernel`, launched as `filter_grad_kernel[(kh * kw, C), THREADS]` by
`filter_grad_cuda`. Two barriers are needed: one after every thread wrote its partial sum, and one
after each level of the tree. Target: a relative error of $10^{-5}$ in float32 against the
float64 reference; the check also wants the pixels split over the block's threads
(`range(t, pixels, THREADS)`), the tree in shared memory and no `cuda.atomic`.
"""),
    exercise("nb04", "THREADS", "filter_grad_kernel", "filter_grad_cuda"),
    check(r"""
check_filter_grad_cuda(filter_grad_kernel)
"""),
    md(r"""
### Break a barrier

Take your kernel and delete its first `cuda.syncthreads()`: the tree then may read a partial sum
that another thread has not written yet. The cell below does exactly that to your
`filter_grad_kernel` (it edits the source, compiles the result as a new kernel) and runs it a few
times on the same input, counting how often it differs from your correct one. Whether the missing
barrier shows depends on the order in which threads run: on a GPU, where the warps of a block run
at their own pace, such a kernel goes wrong; in the simulator, which runs threads by Python's
rules, it may or may not.
"""),
    code(r"""
import ast
import inspect
import textwrap


def without_first_barrier(kernel):
    # Your kernel's source with its first cuda.syncthreads() call removed, compiled as a new kernel.
    tree = ast.parse(textwrap.dedent(inspect.getsource(kernel.py_func)))
    function = tree.body[0]
    function.decorator_list, function.name = [], "no_first_barrier"
    for node in ast.walk(function):
        for field in ("body", "orelse"):
            block = getattr(node, field, None)
            for k, statement in enumerate(block or []):
                if (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
                        and ast.unparse(statement.value.func) == "cuda.syncthreads"):
                    block[k] = ast.Pass()
                    namespace = dict(kernel.py_func.__globals__)
                    exec(compile(ast.fix_missing_locations(tree), "<no first barrier>", "exec"), namespace)
                    return cuda.jit(namespace["no_first_barrier"])
    raise ValueError("the kernel calls cuda.syncthreads() nowhere")


broken_kernel = without_first_barrier(filter_grad_kernel)
xg = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
dyg = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
correct = filter_grad_cuda(xg, dyg, 3, 3)
runs, differ = 3 if SIM else 20, 0
for _ in range(runs):
    broken = np.zeros_like(correct)
    broken_kernel[(9, 3), THREADS](xg, dyg, broken)
    differ += not np.array_equal(broken, correct)
print(f"without the first barrier: {differ} of {runs} runs differ from the correct result"
      f" ({'simulator' if SIM else 'GPU'})")
"""),
    md(r"""
Whatever the count says here, the kernel is wrong: correctness must not depend on how threads
happen to be scheduled. A race that does not show in a test is still a race.

## 4.6 The project's `cuda` backend

`npxception`'s `cuda` backend holds the production versions of these kernels, one file per
operation family as in the `cpu` backend, and the layers call it through the same functions.
Through `npxception.ops` it takes NumPy arrays like every other backend (it copies them to the
device and back); the model keeps its tensors on the device for a whole training step.
"""),
    code(r"""
from npxception import cuda_available

if cuda_available():
    x = rng.standard_normal((1, 5, 5, 4)).astype(np.float32)
    dw = rng.standard_normal((3, 3, 4, 1)).astype(np.float32)
    pw = rng.standard_normal((1, 1, 4, 6)).astype(np.float32)
    on_gpu = ops.separable_conv2d(x, dw, pw, padding="same", backend="cuda")
    reference = ops.separable_conv2d(x, dw, pw, padding="same", backend="numpy")
    print("separable_conv2d, backend='cuda' vs 'numpy': max relative difference "
          f"{np.abs(on_gpu - reference).max() / np.abs(reference).max():.1e}")
else:
    print("no CUDA device and no simulator: the cuda backend is unavailable here")
"""),
    md(r"""
## Summary

* A kernel is one function run by a grid of blocks of threads; each thread computes its indices
  and checks its bounds.
* Map the fastest-varying thread index to the contiguous axis (channels in NHWC), so a warp's
  reads coalesce into a few memory transactions.
* Tiling with shared memory reuses each value fetched from global memory $T$ times; barriers
  (`cuda.syncthreads()`) keep the tile copies and their use in order.
* A reduction on the GPU: per-thread partial sums, then a tree in shared memory with a barrier
  per level; a fixed tree gives the same bits on every run.
* The simulator checks indexing, bounds and the logic of barriers on any machine; it models no
  warps, coalescing or timing, so only a GPU tells the speed (and exposes some races).

## Exercises

1. A warp reads 32 consecutive float32 values starting at byte address 80. How many 32-byte
   sectors does it touch? And starting at address 0?
2. For the tiled GEMM with $T = 16$, how many bytes of shared memory does a block use, and how
   many multiply-adds does each thread do per value it copied from global memory?
3. In `filter_grad_kernel`, what goes wrong if `THREADS` is not a power of two? Change the tree so
   that any block size works.
4. Remove the *second* `cuda.syncthreads()` of `gemm_tiled` and run `pointwise_cuda` a few times.
   Describe the race it opens, even if the simulator does not show it.
5. (A small project, needs a GPU) Time `filter_grad_cuda` against
   `ops.depthwise_conv2d_backward(..., backend="cuda")` at 32x19x19x728, and explain the gap
   (how many blocks does yours launch, and how much work does each do?).
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else "")
      + (" in the CUDA simulator" if SIM else ""))
"""),
]
