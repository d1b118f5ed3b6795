"""Notebook 1: from a regular convolution to a depthwise separable one."""

from cells import check, code, exercise, md

FILENAME = "01_depthwise_separable_convolution.ipynb"

CELLS = [
    md(r"""
# 1. From convolution to depthwise separable convolution

Xception (François Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR
2017, [arXiv 1610.02357](https://arxiv.org/abs/1610.02357)) is built almost entirely from one layer:
the **depthwise separable convolution**. This notebook builds that layer from scratch, three times
over: with plain Python loops (to see every index), with vectorized NumPy (to see why it can be
fast), and through `npxception.ops` (the project's checked implementation). Then it counts what the layer saves, and
runs it on a real photograph to see what its two halves do.

You will learn:

* what a regular convolution computes, index by index, in the NHWC layout;
* the *Inception hypothesis* and why its "extreme" version is a depthwise separable convolution;
* how depthwise and pointwise convolutions are written with loops and without;
* the parameter and multiply-add arithmetic, worked out for every separable layer of Xception;
* that a separable convolution is exactly a regular convolution with a *factorized* kernel.

Three "your turn" exercises ask you to write code, each followed by a check against the
project's implementation; the notebook ends with more exercises to think and code through.

**Runtime:** measured 35 s on 2 CPU cores of a busy shared machine (fast mode,
`NPXCEPTION_FAST=1`, which the test suite uses, shrinks the photograph and the timing runs).
Nothing is downloaded: the photograph ships with matplotlib.
"""),
    code(r"""
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import cbook
from numpy.lib.stride_tricks import sliding_window_view

from npxception import ops

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
rng = np.random.default_rng(0)


def median_time(fn, repeat=5):
    # Median of a few runs: robust to the odd slow run on a busy machine.
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
"""),
    md(r"""
## 1.1 A regular convolution, one index at a time

Images here are **NHWC** arrays: batch, height, width, channels, with the channels of one pixel
next to each other in memory (TensorFlow's and Keras's layout, and so Xception's). A kernel has
Keras's shape `(kh, kw, Cin, Cout)`. With stride 1 and no padding, output pixel $(i, j)$ of output
channel $o$ is

$$
y[n, i, j, o] \;=\; \sum_{p=0}^{k_h-1} \sum_{q=0}^{k_w-1} \sum_{c=0}^{C_\text{in}-1}
x[n,\, i+p,\, j+q,\, c]\; w[p, q, c, o].
$$

Every output channel looks at a $k_h \times k_w$ window of **every** input channel: one kernel
mixes space *and* channels at once. (Strictly this is a cross-correlation: the kernel is not
flipped. Every deep-learning framework calls it convolution; notebook 2 shows why the difference
matters.) Seven nested loops say exactly that:
"""),
    code(r"""
def conv2d_loops(x, w):
    # x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> (N, H - kh + 1, W - kw + 1, Cout); stride 1, 'valid'.
    n_img, h, w_in, c_in = x.shape
    kh, kw, _, c_out = w.shape
    ho, wo = h - kh + 1, w_in - kw + 1
    y = np.zeros((n_img, ho, wo, c_out), dtype=x.dtype)
    for n in range(n_img):
        for i in range(ho):
            for j in range(wo):
                for o in range(c_out):
                    acc = 0.0
                    for p in range(kh):
                        for q in range(kw):
                            for c in range(c_in):
                                acc += x[n, i + p, j + q, c] * w[p, q, c, o]
                    y[n, i, j, o] = acc
    return y


x = rng.standard_normal((1, 8, 8, 3))
w = rng.standard_normal((3, 3, 3, 4))
y_loops = conv2d_loops(x, w)
y_ops = ops.conv2d(x, w)
print("output shape:", y_loops.shape)
print("max |loops - ops.conv2d| =", np.abs(y_loops - y_ops).max())
"""),
    md(r"""
## 1.2 The Inception hypothesis, taken to the extreme

A regular convolution has to learn two things with one kernel: **spatial** correlations (edges,
textures: how neighbouring pixels relate) and **cross-channel** correlations (how features at one
pixel relate). The Inception modules (Szegedy et al.) first map the input into a few smaller spaces
with 1x1 convolutions and then look at space inside each of them, separately. The paper reads this
design as a hypothesis, the **Inception hypothesis**: cross-channel and spatial correlations are
*sufficiently decoupled* that it is better not to map them jointly.

Xception makes a stronger hypothesis: the two mappings can be **entirely decoupled**. Take the
Inception module to the extreme: one 1x1 convolution mixes channels, and then every single output
channel gets its own spatial filter, with no channel mixing at all. That is (up to the order of the two
steps) a **depthwise separable convolution**:

1. **depthwise**: a $k \times k$ filter per input channel, no sum over channels;
2. **pointwise**: a 1x1 convolution, a plain matrix product over channels at every pixel.

Between "regular" and "extreme" sits a whole spectrum, indexed by how many independent channel
segments the spatial convolution sees. The picture shows which input channel (column) can reach
which output channel (row) through a spatial filter, for 16 channels:
"""),
    code(r"""
def connectivity(channels, segments):
    # 1 where an output channel's spatial filter reads an input channel: block-diagonal segments.
    size = channels // segments
    seg = np.arange(channels) // size
    return (seg[:, None] == seg[None, :]).astype(float)


channels = 16
panels = [(1, "regular convolution\n(1 segment: all channels)"),
          (4, "Inception-style\n(4 segments)"),
          (channels, "depthwise: 'extreme Inception'\n(16 segments, one channel each)")]
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (segments, title) in zip(axes, panels):
    mask = connectivity(channels, segments)
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.3)
    ax.set_title(f"{title}\n{int(mask.sum())} spatial filters", fontsize=10)
    ax.set_xlabel("input channel")
    ax.set_ylabel("output channel")
fig.suptitle("Which channels a k x k filter mixes", y=1.02)
plt.tight_layout()
plt.show()
"""),
    md(r"""
In the depthwise case each spatial filter sees one channel, so the layer needs only as many spatial
filters as there are channels; all the channel mixing moves into the cheap 1x1 convolution.

## 1.3 Depthwise convolution: loops, then NumPy

With a *depth multiplier* $M$ (Keras's `depth_multiplier`, 1 in Xception), the depthwise kernel has
shape `(kh, kw, C, M)` and output channel $c\,M + m$ is input channel $c$ filtered by
$w[:, :, c, m]$:

$$
y[n, i, j, c M + m] \;=\; \sum_{p, q} x[n,\, i+p,\, j+q,\, c]\; w[p, q, c, m].
$$

Compare with the regular convolution: the sum over $c$ is gone.
"""),
    code(r"""
def depthwise_loops(x, w):
    # x (N, H, W, C), w (kh, kw, C, M) -> (N, Ho, Wo, C*M); stride 1, 'valid'.
    n_img, h, w_in, c_in = x.shape
    kh, kw, _, mult = w.shape
    ho, wo = h - kh + 1, w_in - kw + 1
    y = np.zeros((n_img, ho, wo, c_in * mult), dtype=x.dtype)
    for n in range(n_img):
        for i in range(ho):
            for j in range(wo):
                for c in range(c_in):
                    for m in range(mult):
                        acc = 0.0
                        for p in range(kh):
                            for q in range(kw):
                                acc += x[n, i + p, j + q, c] * w[p, q, c, m]
                        y[n, i, j, c * mult + m] = acc
    return y
"""),
    md(r"""
Python runs those loops one multiply at a time. The first NumPy trick is to swap the loop order:
loop over the $k_h k_w$ **kernel taps** (9 of them for 3x3) and, for each tap, process every
output pixel and channel at once. For tap $(p, q)$ the input pixels read by all outputs form the
shifted window `x[:, p:p+Ho, q:q+Wo, :]`, and multiplying it by `w[p, q]` (shape `(C, M)`)
broadcasts over the channels. This is how `npxception`'s reference backend is written.

The second trick builds a view of every window at once with `sliding_window_view` (no copy: only
strides change) and lets `einsum` do the whole sum.
"""),
    code(r"""
def depthwise_taps(x, w):
    # One vectorized multiply-add per kernel tap; broadcasting handles the depth multiplier.
    kh, kw, c_in, mult = w.shape
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    y = np.zeros((x.shape[0], ho, wo, c_in, mult), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            y += x[:, p:p + ho, q:q + wo, :, None] * w[p, q]
    return y.reshape(x.shape[0], ho, wo, c_in * mult)


def depthwise_einsum(x, w):
    # windows[n, i, j, c, p, q] = x[n, i + p, j + q, c]: a strided view, not a copy.
    kh, kw, c_in, mult = w.shape
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))
    y = np.einsum("nijcpq,pqcm->nijcm", windows, w)
    return y.reshape(*y.shape[:3], c_in * mult)


x = rng.standard_normal((2, 9, 10, 4))
w = rng.standard_normal((3, 3, 4, 2))
reference = ops.depthwise_conv2d(x, w)
for name, fn in [("loops", depthwise_loops), ("taps", depthwise_taps), ("einsum", depthwise_einsum)]:
    print(f"{name:>7}: max |difference from ops.depthwise_conv2d| = "
          f"{np.abs(fn(x, w) - reference).max():.1e}")
"""),
    md(r"""
### Your turn: a strided depthwise convolution

Xception downsamples with its stride-2 first convolution (a regular 3x3 one), its max pools and
its strided 1x1 shortcuts, never in a depthwise convolution; but strided depthwise convolutions
are everywhere in its descendants (MobileNets). With stride $s$, output $(i, j)$
reads the window starting at input $(i s, j s)$, so $H_o = \lfloor (H - k_h) / s \rfloor + 1$.
Write `depthwise_strided` with the tap loop of `depthwise_taps`: for tap $(p, q)$ the pixels
read by all outputs are a *strided* slice of the input. Target: a difference from
`ops.depthwise_conv2d(x, w, stride=s)` of at most $10^{-12}$ (float64 rounding).
"""),
    exercise("nb01", "depthwise_strided"),
    check(r"""
from exercises.checks import check_cost_ratio, check_depthwise_strided, check_separable_kernel

check_depthwise_strided(depthwise_strided)
"""),
    md(r"""
How much do the two tricks buy? The loops get a small image; the vectorized versions a batch
that resembles a real layer.
"""),
    code(r"""
small_x = rng.standard_normal((1, 16, 16, 8)).astype(np.float32)
small_w = rng.standard_normal((3, 3, 8, 1)).astype(np.float32)
t_loops = median_time(lambda: depthwise_loops(small_x, small_w), repeat=1 if FAST else 3)
t_taps_small = median_time(lambda: depthwise_taps(small_x, small_w))
print(f"16x16x8 image:  loops {t_loops * 1e3:8.1f} ms   taps {t_taps_small * 1e3:6.3f} ms   "
      f"-> taps are {t_loops / t_taps_small:,.0f}x faster")

size = 32 if FAST else 64
big_x = rng.standard_normal((8, size, size, 64)).astype(np.float32)
big_w = rng.standard_normal((3, 3, 64, 1)).astype(np.float32)
t_taps = median_time(lambda: depthwise_taps(big_x, big_w))
t_einsum = median_time(lambda: depthwise_einsum(big_x, big_w))
print(f"8x{size}x{size}x64 batch: taps {t_taps * 1e3:.1f} ms   einsum {t_einsum * 1e3:.1f} ms   "
      f"-> {'taps' if t_taps < t_einsum else 'einsum'} wins by {max(t_taps, t_einsum) / min(t_taps, t_einsum):.1f}x")
"""),
    md(r"""
Both vectorized forms beat the loops by orders of magnitude; which of the two wins depends on the
NumPy build, the shapes and the machine (the tap loop writes the whole output 9 times, `einsum`
reads a 6-D strided view in one pass). Both still leave speed on the table: they allocate
temporaries and cannot fuse the multiply with the add. Notebook 3 compiles the loops instead
(Numba) and gets the best of both.

## 1.4 Pointwise convolution is one matrix product

A 1x1 convolution with kernel `(1, 1, Cin, Cout)` mixes the channels of each pixel and nothing
else. In NHWC the channels of a pixel are a contiguous row, so the whole layer is one GEMM:

$$
Y = X W, \qquad X = x.\text{reshape}(N H W,\ C_\text{in}),\quad W = w[0, 0] \in
\mathbb{R}^{C_\text{in} \times C_\text{out}}.
$$
"""),
    code(r"""
def pointwise_matmul(x, w):
    c_in, c_out = w.shape[2:]
    return (x.reshape(-1, c_in) @ w[0, 0]).reshape(*x.shape[:3], c_out)


x = rng.standard_normal((2, 5, 5, 6))
w_pw = rng.standard_normal((1, 1, 6, 3))
print("max |matmul - ops.pointwise_conv2d| =",
      np.abs(pointwise_matmul(x, w_pw) - ops.pointwise_conv2d(x, w_pw)).max())
"""),
    md(r"""
## 1.5 Separable = depthwise, then pointwise, = a factorized regular convolution

Keras's `SeparableConv2D` (and Xception) runs the depthwise step first and the pointwise step
second; the "extreme Inception" module does it the other way round. The paper argues the order
hardly matters once such layers are stacked, since every 1x1 step is followed by a spatial step
either way. The other difference: Inception puts a ReLU after both steps, while a depthwise
separable convolution has no non-linearity in between (notebook 7 tests that choice).

Write the two steps as one sum. With depthwise kernel $d$ of shape `(kh, kw, C, M)` and pointwise
kernel $P$ of shape `(C*M, Cout)`:

$$
y[n,i,j,o] = \sum_{c, m} P[cM+m,\, o] \sum_{p,q} x[n,i+p,j+q,c]\, d[p,q,c,m]
= \sum_{p,q,c} x[n,i+p,j+q,c]\; \underbrace{\sum_m d[p,q,c,m]\, P[cM+m,\, o]}_{K[p,q,c,o]} .
$$

So a separable convolution **is** a regular convolution, with the kernel $K$. Its constraint: with
$M = 1$, every slice $K[:, :, c, o]$ is the same spatial pattern $d[:, :, c, 0]$ times a scalar
$P[c, o]$.

### Your turn: the regular kernel of a separable convolution, for any depth multiplier

Write `separable_kernel(depthwise, pointwise)`, returning the $K$ of the formula above for a
depth multiplier $M \ge 1$ (the pointwise kernel's row $cM + m$ belongs to input channel $c$,
filter $m$). The check compares `ops.conv2d(x, K)` with `ops.separable_conv2d` for $M$ = 1, 2
and 3 (target $10^{-12}$), and verifies that every channel's pattern matrix has rank at most $M$.
"""),
    exercise("nb01", "separable_kernel"),
    check(r"""
check_separable_kernel(separable_kernel)
"""),
    md(r"""
With your kernel, the cell below checks the identity once more, then measures the constraint: for
each input channel, stack the `Cout` spatial patterns into a $(k_h k_w) \times C_\text{out}$
matrix and look at its singular values. A separable kernel gives rank at most $M$ (every column is
a multiple of one of the $M$ patterns $d[:, :, c, m]$); a random regular kernel has full rank.
"""),
    code(r"""
c_in, mult, c_out = 4, 1, 6
x = rng.standard_normal((2, 7, 7, c_in))
d = rng.standard_normal((3, 3, c_in, mult))
P = rng.standard_normal((1, 1, c_in * mult, c_out))

y_sep = ops.separable_conv2d(x, d, P)
y_two_steps = ops.pointwise_conv2d(ops.depthwise_conv2d(x, d), P)
K = separable_kernel(d, P)                           # your exercise
y_full = ops.conv2d(x, K)
print("max |separable - (depthwise then pointwise)| =", np.abs(y_sep - y_two_steps).max())
print("max |separable - conv2d with K|            =", np.abs(y_sep - y_full).max())


def spatial_rank_spectrum(kernel, c):
    # Singular values of input channel c's (kh*kw, Cout) matrix of spatial patterns.
    kh, kw, _, co = kernel.shape
    return np.linalg.svd(kernel[:, :, c, :].reshape(kh * kw, co), compute_uv=False)


random_K = rng.standard_normal(K.shape)
np.set_printoptions(precision=3, suppress=True)
print("singular values, separable K, channel 0:", spatial_rank_spectrum(K, 0))
print("singular values, random K,    channel 0:", spatial_rank_spectrum(random_K, 0))
"""),
    md(r"""
## 1.6 Parameters and multiply-adds

For a layer with a $k \times k$ window, $C_\text{in}$ input and $C_\text{out}$ output channels,
depth multiplier 1 and an $H' \times W'$ output (no biases, as in Xception):

| | parameters | multiply-adds |
|---|---|---|
| regular | $k^2 C_\text{in} C_\text{out}$ | $H'W' \cdot k^2 C_\text{in} C_\text{out}$ |
| separable | $k^2 C_\text{in} + C_\text{in} C_\text{out}$ | $H'W' \cdot (k^2 C_\text{in} + C_\text{in} C_\text{out})$ |

and their ratio is the same for both columns:

$$
\frac{\text{separable}}{\text{regular}} = \frac{1}{C_\text{out}} + \frac{1}{k^2}.
$$

With $k = 3$ and hundreds of channels that is close to $1/9$: the pointwise step dominates, and the
spatial filtering is nearly free. Here is the count for every separable layer of Xception at its
299x299 input (the channel counts and resolutions of the paper's Figure 5):
"""),
    code(r"""
# (name, Cin, Cout, output side) for every SeparableConv2D in Xception at a 299x299 input.
xception_separables = (
    [("block2_sepconv1", 64, 128, 147), ("block2_sepconv2", 128, 128, 147),
     ("block3_sepconv1", 128, 256, 74), ("block3_sepconv2", 256, 256, 74),
     ("block4_sepconv1", 256, 728, 37), ("block4_sepconv2", 728, 728, 37)]
    + [(f"block{b}_sepconv{s}", 728, 728, 19) for b in range(5, 13) for s in (1, 2, 3)]
    + [("block13_sepconv1", 728, 728, 19), ("block13_sepconv2", 728, 1024, 19),
       ("block14_sepconv1", 1024, 1536, 10), ("block14_sepconv2", 1536, 2048, 10)]
)
k = 3
rows, totals = [], np.zeros(4)
for name, ci, co, side in xception_separables:
    regular_params = k * k * ci * co
    separable_params = k * k * ci + ci * co
    counts = np.array([regular_params, separable_params,
                       side * side * regular_params, side * side * separable_params])
    totals += counts
    rows.append((name, ci, co, side, *counts))

print(f"{'layer':<17}{'Cin':>5}{'Cout':>5}{'out':>5}{'regular params':>16}{'separable':>11}"
      f"{'regular MACs':>15}{'separable':>13}")
for index, (name, ci, co, side, rp, sp, rm, sm) in enumerate(rows):
    if 7 <= index < len(rows) - 4:  # blocks 5-12: the same 728 -> 728 layer again
        if index == 7:
            print(f"  ... {len(rows) - 11} more 728 -> 728 layers like the one above ...")
        continue
    print(f"{name:<17}{ci:>5}{co:>5}{side:>5}{rp:>16,.0f}{sp:>11,.0f}"
          f"{rm / 1e6:>14,.0f}M{sm / 1e6:>12,.0f}M")
print(f"{'all 34 layers':<32}{totals[0]:>16,.0f}{totals[1]:>11,.0f}"
      f"{totals[2] / 1e9:>14,.2f}G{totals[3] / 1e9:>12,.2f}G")
print(f"separable / regular: {totals[1] / totals[0]:.3f} of the parameters, "
      f"{totals[3] / totals[2]:.3f} of the multiply-adds")
"""),
    code(r"""
c_range = np.arange(8, 2049)
fig, ax = plt.subplots(figsize=(7, 3.5))
for kk in (3, 5, 7):
    ax.plot(c_range, 1 / c_range + 1 / kk**2, label=f"k = {kk}")
    ax.axhline(1 / kk**2, color="gray", lw=0.5, ls=":")
for co in sorted({co for _, _, co, _ in xception_separables}):
    ax.plot(co, 1 / co + 1 / 9, "ko", ms=4)
ax.set_xscale("log")
ax.set_xlabel("output channels $C_{out}$ (dots: Xception's layers, k = 3)")
ax.set_ylabel("separable / regular cost")
ax.set_title("Cost of a separable convolution relative to a regular one")
ax.legend()
plt.tight_layout()
plt.show()
"""),
    md(r"""
### Your turn: the cost ratio with a depth multiplier

The table assumed $M = 1$. With a depth multiplier $M$ the depthwise step has $k^2 C_\text{in} M$
weights and produces $C_\text{in} M$ channels for the pointwise step. Write `cost_ratio(k, c_in,
c_out, multiplier)`, the separable layer's weights (equivalently, multiply-adds) divided by the
regular layer's, by counting the weights of each kernel. Then simplify it on paper: the check
compares your count with the closed form (target $10^{-12}$). For which $M$ does the separable
layer stop being cheaper than a regular one with $k = 3$ and $C_\text{out} = 728$?
"""),
    exercise("nb01", "cost_ratio"),
    check(r"""
check_cost_ratio(cost_ratio)
print(f"k = 3, Cin = Cout = 728: M = 1 costs {cost_ratio(3, 728, 728, 1):.3f} of a regular layer, "
      f"M = 8 costs {cost_ratio(3, 728, 728, 8):.3f}")
"""),
    md(r"""
The saving is real but not free: the separable layer can only represent the factorized kernels of
1.5. Xception's bet, borne out by its ImageNet and JFT results, is that spending the saved budget
on more and wider layers is worth more than the lost generality.

## 1.7 What the two halves do to a photograph

Matplotlib ships a portrait of Grace Hopper. The depthwise step below uses three hand-made 3x3
filters per colour channel (depth multiplier $M = 3$): a box blur, a horizontal derivative
and a vertical derivative (Sobel filters). That turns the 3 colour channels into 9 maps, each
computed from **one** colour channel only.
"""),
    code(r"""
photo_path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
photo = plt.imread(photo_path)                       # uint8 (H, W, 3)
step = 8 if FAST else 3                              # subsample: a few hundred pixels suffice
image = photo[::step, ::step].astype(np.float64) / 255.0
x_img = image[None]                                  # NHWC with N = 1
print("photograph:", photo.shape, "-> input", x_img.shape)

blur = np.full((3, 3), 1 / 9)
sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 4
sobel_y = sobel_x.T
filters = [blur, sobel_x, sobel_y]
d_photo = np.zeros((3, 3, 3, len(filters)))           # (kh, kw, C, M)
for c in range(3):
    for m, f in enumerate(filters):
        d_photo[:, :, c, m] = f
depthwise_maps = ops.depthwise_conv2d(x_img, d_photo, padding="same")
print("depthwise output:", depthwise_maps.shape, "(channel c*3 + m = colour c, filter m)")

fig, axes = plt.subplots(3, 4, figsize=(11, 8.5))
colours, filter_names = ["red", "green", "blue"], ["box blur", "d/dx (Sobel)", "d/dy (Sobel)"]
for c in range(3):
    channel_img = np.zeros_like(image)
    channel_img[..., c] = image[..., c]
    axes[c, 0].imshow(channel_img)
    axes[c, 0].set_ylabel(f"{colours[c]} channel")
    for m in range(3):
        fmap = depthwise_maps[0, :, :, c * 3 + m]
        lim = np.abs(fmap).max()
        axes[c, m + 1].imshow(fmap, cmap="gray" if m == 0 else "RdBu_r",
                              vmin=0 if m == 0 else -lim, vmax=lim)
        if c == 0:
            axes[c, m + 1].set_title(filter_names[m])
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Depthwise step: each map sees one colour channel", fontsize=13)
plt.tight_layout()
if not FAST:
    fig.savefig("figures/depthwise_photo.png", dpi=80, bbox_inches="tight")
plt.show()
"""),
    md(r"""
The pointwise step then mixes channels **at each pixel**, and nothing else. With a hand-made
`(1, 1, 9, 3)` kernel it can form the luminance-weighted sum of the three blurred channels
(a grey-scale blur), and likewise of the three x-derivatives and the three y-derivatives. The
gradient magnitude $\sqrt{g_x^2 + g_y^2}$ of the last two is an edge map: a feature that needed
both a spatial filter and a channel mix, built from two steps that each do only one. (The bright
frame around the edge map is the zero padding of `padding="same"`: at the border the filters see
a black surround.)
"""),
    code(r"""
luminance = np.array([0.299, 0.587, 0.114])
P_photo = np.zeros((1, 1, 9, 3))                     # in: colour c, filter m at c*3 + m
for c in range(3):
    for m in range(3):
        P_photo[0, 0, c * 3 + m, m] = luminance[c]   # out m: grey version of filter m
mixed = ops.pointwise_conv2d(depthwise_maps, P_photo)[0]
same_in_one_op = ops.separable_conv2d(x_img, d_photo, P_photo, padding="same")[0]
print("max |pointwise(depthwise) - separable_conv2d| =", np.abs(mixed - same_in_one_op).max())

edges = np.hypot(mixed[..., 1], mixed[..., 2])
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
axes[0].imshow(image)
axes[0].set_title("input")
axes[1].imshow(mixed[..., 0], cmap="gray")
axes[1].set_title("pointwise out 0: grey blur")
lim = np.abs(mixed[..., 1]).max()
axes[2].imshow(mixed[..., 1], cmap="RdBu_r", vmin=-lim, vmax=lim)
axes[2].set_title("pointwise out 1: grey d/dx")
axes[3].imshow(edges, cmap="magma")
axes[3].set_title("edges: hypot(out 1, out 2)")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()
"""),
    md(r"""
In a trained Xception nobody hand-picks these filters: the network learns $d$ and $P$ by gradient
descent, and the next notebook derives the gradients it needs.

## Summary

* A regular convolution mixes space and channels with one kernel; a depthwise separable
  convolution does the two jobs in two steps: a per-channel spatial filter, then a 1x1 channel mix.
* It is exactly a regular convolution whose kernel is factorized, with roughly
  $1/C_\text{out} + 1/k^2$ of the parameters and multiply-adds.
* Vectorizing is about loop order: loop over the few kernel taps, and let NumPy sweep pixels and
  channels.

## Exercises

1. A regular 3x3 convolution from 256 to 256 channels on a 37x37 map: how many multiply-adds?
   And the separable one? Check your answers against the table in 1.6.
2. Show that with $M$ depthwise filters per channel the ratio is $M / C_\text{out} + M / k^2$, and
   find the largest $M$ for which a 3x3 separable layer from 728 to 728 channels is still cheaper
   than a regular one.
3. The "extreme Inception" module does the 1x1 convolution first and the spatial filters second.
   Write that order with `ops.pointwise_conv2d` and `ops.depthwise_conv2d`, and show with a
   rank argument like the one in 1.5 which kernels $K$ it can represent.
4. `sliding_window_view` returned a view, not a copy. How many bytes does the 6-D view of an
   8x64x64x64 float32 batch occupy, and how many would a copy need (`windows.nbytes` versus
   `windows.base.nbytes`)?
5. (A small project) Replace the hand-made filters of 1.7 by the first depthwise filters of a
   trained Keras Xception (`keras.applications.Xception(weights="imagenet")`, a download), and
   show their outputs on the photograph.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
