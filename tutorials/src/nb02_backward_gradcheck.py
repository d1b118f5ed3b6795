"""Notebook 2: backward passes by hand, and how to check them without fooling yourself."""

from cells import check, code, exercise, md

FILENAME = "02_backward_passes_and_gradient_checking.ipynb"

CELLS = [
    md(r"""
# 2. Backward passes by hand, and gradient checking

Training needs, for every layer, a **backward pass**: given $\partial L / \partial y$ for the
layer's output, return $\partial L / \partial x$ for its input and $\partial L / \partial w$ for
its weights. This notebook derives the backward passes of the two halves of a separable
convolution, writes them with loops and vectorized, and then checks them numerically with
`npxception.gradcheck`. Half of the notebook is about the ways a gradient check can *pass while
the code is wrong*; each trap is shown failing, not just described.

Three "your turn" exercises (the strided depthwise backward pass, batch normalization's backward
pass, the loss gradient) are checked against `npxception.ops`; more exercises close the notebook.

**Runtime:** measured 9 s on 2 CPU cores of a busy shared machine (fast mode is the same: every
array here is tiny).
"""),
    code(r"""
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from npxception import gradcheck, ops

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
rng = np.random.default_rng(0)
"""),
    md(r"""
## 2.1 What a backward pass returns

A layer maps $x \mapsto y = f(x)$. Somewhere downstream a scalar loss $L$ depends on $y$; the
backward pass receives $dy = \partial L / \partial y$ (same shape as $y$) and returns

$$
dx = \frac{\partial L}{\partial x}, \qquad
dx[a] = \sum_b \frac{\partial y[b]}{\partial x[a]}\, dy[b],
$$

a **vector-Jacobian product**: the Jacobian is never formed. A useful way to derive one: write
$L = \sum_b y[b]\, dy[b]$ with $dy$ held fixed, and differentiate that sum by each input element.
Every formula below comes out of this recipe.

## 2.2 Pointwise convolution: two matrix products

The forward pass is $Y = XW$ with $X$ of shape $(NHW, C_\text{in})$ and $W$ of shape
$(C_\text{in}, C_\text{out})$. From $L = \sum_{r,o} dY[r,o] \sum_c X[r,c] W[c,o]$:

$$
\frac{\partial L}{\partial X[r,c]} = \sum_o dY[r,o]\, W[c,o] \;\Rightarrow\; dX = dY\, W^\top,
\qquad
\frac{\partial L}{\partial W[c,o]} = \sum_r X[r,c]\, dY[r,o] \;\Rightarrow\; dW = X^\top dY.
$$

A shape check is a good first test of such a formula: $dY W^\top$ is $(NHW, C_\text{out}) \times
(C_\text{out}, C_\text{in})$, the shape of $X$, as it must be.
"""),
    code(r"""
def pointwise_backward(dy, x, w):
    c_in, c_out = w.shape[2:]
    X, dY = x.reshape(-1, c_in), dy.reshape(-1, c_out)
    dx = (dY @ w[0, 0].T).reshape(x.shape)
    dw = (X.T @ dY).reshape(w.shape)
    return dx, dw


x = rng.standard_normal((2, 4, 5, 3))
w = rng.standard_normal((1, 1, 3, 6))
dy = rng.standard_normal((2, 4, 5, 6))
for name, mine, theirs in zip(["dx", "dw"], pointwise_backward(dy, x, w),
                              ops.pointwise_conv2d_backward(dy, x, w)):
    print(f"{name}: max |mine - ops| = {np.abs(mine - theirs).max():.1e}")
"""),
    md(r"""
## 2.3 Depthwise convolution: scatter what you gathered

Forward (stride 1, no padding, depth multiplier $M$):
$y[n,i,j,cM+m] = \sum_{p,q} x[n,i+p,j+q,c]\, w[p,q,c,m]$. Differentiate
$L = \sum y \cdot dy$:

$$
dw[p,q,c,m] = \sum_{n,i,j} x[n,\,i+p,\,j+q,\,c]\; dy[n,i,j,cM+m],
\qquad
dx[n,\,i+p,\,j+q,\,c] \mathrel{+}= \sum_m w[p,q,c,m]\; dy[n,i,j,cM+m].
$$

The forward pass **gathered** a window of inputs into each output; the backward pass **scatters**
each output's gradient back over the same window. An input pixel lies in up to $k_h k_w$ windows,
so its gradient is a sum, written as `+=`. (That `+=` is harmless here, and a race condition in
parallel code: notebook 3.) The loops, then the same thing one kernel tap at a time:
"""),
    code(r"""
def depthwise_backward_loops(dy, x, w):
    kh, kw, c_in, mult = w.shape
    n_img, ho, wo, _ = dy.shape
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for n in range(n_img):
        for i in range(ho):
            for j in range(wo):
                for c in range(c_in):
                    for m in range(mult):
                        g = dy[n, i, j, c * mult + m]
                        for p in range(kh):
                            for q in range(kw):
                                dw[p, q, c, m] += x[n, i + p, j + q, c] * g
                                dx[n, i + p, j + q, c] += w[p, q, c, m] * g
    return dx, dw


def depthwise_backward_taps(dy, x, w):
    kh, kw, c_in, mult = w.shape
    n_img, ho, wo, _ = dy.shape
    dy5 = dy.reshape(n_img, ho, wo, c_in, mult)     # split channel c*M + m into (c, m)
    dx, dw = np.zeros_like(x), np.empty_like(w)
    for p in range(kh):
        for q in range(kw):
            window = x[:, p:p + ho, q:q + wo, :]      # what tap (p, q) read in the forward pass
            dw[p, q] = np.einsum("nijc,nijcm->cm", window, dy5)
            dx[:, p:p + ho, q:q + wo, :] += (dy5 * w[p, q]).sum(axis=-1)
    return dx, dw


x = rng.standard_normal((2, 7, 6, 3))
w = rng.standard_normal((3, 3, 3, 2))
dy = rng.standard_normal(ops.depthwise_conv2d(x, w).shape)
expected = ops.depthwise_conv2d_backward(dy, x, w)
for label, fn in [("loops", depthwise_backward_loops), ("taps", depthwise_backward_taps)]:
    errors = [np.abs(mine - ref).max() for mine, ref in zip(fn(dy, x, w), expected)]
    print(f"{label:>5}: max |dx - ops| = {errors[0]:.1e}, max |dw - ops| = {errors[1]:.1e}")
"""),
    md(r"""
### Your turn: the stride-2 backward pass

Xception's stride-2 layers are its first convolution (a regular 3x3 one), its max pools and its
1x1 shortcuts, none of them depthwise, but the derivation is the same for any strided layer.
With stride $s$, output $(i, j)$ read input $(is + p,\, js + q)$ at tap $(p, q)$:

$$
dw[p,q,c,m] = \sum_{n,i,j} x[n,\, is+p,\, js+q,\, c]\; dy[n,i,j,cM+m],
\qquad
dx[n,\, is+p,\, js+q,\, c] \mathrel{+}= \sum_m w[p,q,c,m]\; dy[n,i,j,cM+m].
$$

Write `depthwise_backward_strided` with the tap loop of `depthwise_backward_taps`; the window of
tap $(p, q)$ becomes a strided slice. Inputs that no window reads (the last rows when
$(H - k_h)$ is not a multiple of $s$) must get a zero gradient. Target: $10^{-12}$ against
`ops.depthwise_conv2d_backward(..., stride=s)`.
"""),
    exercise("nb02", "depthwise_backward_strided"),
    check(r"""
from exercises.checks import (check_batch_norm_backward, check_depthwise_backward_strided,
                              check_softmax_cross_entropy_backward)

check_depthwise_backward_strided(depthwise_backward_strided)
"""),
    md(r"""
### The input gradient is a convolution with the flipped kernel

Rename the scatter into a gather. With $a = i + p$: $dx[n,a,b,c] = \sum_{p,q} dy[n,\,a-p,\,b-q,\,c]
\, w[p,q,c]$ (for $M = 1$, and treating $dy$ outside its borders as zero). That is a **true**
convolution of $dy$ with $w$: the kernel index runs *against* the pixel index. Written as the
cross-correlation that our ops compute, it reads: pad $dy$ by $k-1$ on every side and correlate
it with the kernel rotated by 180 degrees. The forward pass is a correlation; its gradient is a
"full" convolution. Check it:
"""),
    code(r"""
x = rng.standard_normal((1, 8, 8, 4))
w = rng.standard_normal((3, 3, 4, 1))
dy = rng.standard_normal(ops.depthwise_conv2d(x, w).shape)
dx_backward, _ = ops.depthwise_conv2d_backward(dy, x, w)
dx_full_conv = ops.depthwise_conv2d(dy, w[::-1, ::-1].copy(), padding=(2, 2))
print("max |dx - correlate(pad(dy, 2), rot180(w))| =", np.abs(dx_backward - dx_full_conv).max())
"""),
    md(r"""
## 2.4 Gradient checking

Derivations slip. A **gradient check** compares the backward pass with finite differences of the
forward pass. `npxception.gradcheck(f, inputs, backward)` fixes a random upstream gradient $dy$,
defines $L(x) = \sum f(x) \cdot dy$, and for a sample of input elements compares the analytic
$dx[a]$ with the central difference

$$
\frac{L(x + h e_a) - L(x - h e_a)}{2h} = \frac{\partial L}{\partial x[a]} + O(h^2),
$$

reporting the worst relative error $|a - n| / \max(|a|, |n|)$. In float64 a correct backward pass
gives errors far below the default tolerance of $10^{-6}$: typically between $10^{-11}$ and
$10^{-7}$, since the finite difference itself is only that accurate (the cells below show values
up to $1.5 \times 10^{-8}$). A wrong one gives errors of order $10^{-2}$ to 1. Our hand-written
functions first, on the shapes they support:
"""),
    code(r"""
x = rng.standard_normal((2, 6, 5, 3))
report = gradcheck(
    lambda x, w: ops.depthwise_conv2d(x, w),
    {"x": x, "w": rng.standard_normal((3, 3, 3, 2))},
    lambda dy, x, w: dict(zip(["x", "w"], depthwise_backward_taps(dy, x, w))))
print("hand-written depthwise backward\n" + str(report))

report = gradcheck(
    lambda x, w: ops.pointwise_conv2d(x, w),
    {"x": x, "w": rng.standard_normal((1, 1, 3, 4))},
    lambda dy, x, w: dict(zip(["x", "w"], pointwise_backward(dy, x, w))))
print("\nhand-written pointwise backward\n" + str(report))
"""),
    md(r"""
And the library's own separable convolution, with stride 2 and TensorFlow's `"same"` padding
(the case where the padding is lopsided: the extra row goes at the bottom). The separable backward
is the chain rule through both halves: pointwise backward first, its $dx$ becomes the depthwise
step's $dy$.
"""),
    code(r"""
conv = dict(stride=2, padding="same")
report = gradcheck(
    lambda x, dw, pw: ops.separable_conv2d(x, dw, pw, **conv),
    {"x": rng.standard_normal((2, 7, 6, 3)), "dw": rng.standard_normal((3, 3, 3, 1)),
     "pw": rng.standard_normal((1, 1, 3, 5))},
    lambda dy, x, dw, pw: dict(zip(["x", "dw", "pw"],
                                   ops.separable_conv2d_backward(dy, x, dw, pw, **conv))))
print(report)
report.assert_ok(1e-6)                               # raises AssertionError above 1e-6
print("every error is below 1e-6")
"""),
    md(r"""
## 2.5 The traps

### Trap 1: float32 is too coarse for finite differences

The central difference has two error sources pulling in opposite directions: the $O(h^2)$
**truncation** error of the formula, and the **rounding** error of computing $L(x \pm h)$, about
$u\,|L| / h$ for the unit roundoff $u$ ($1.1 \times 10^{-16}$ in float64, $6 \times 10^{-8}$ in
float32). Their sum is smallest near $h \approx u^{1/3}$. Sweep $h$ for one element of a
nonlinear function, ELU after a depthwise convolution, in both precisions:
"""),
    code(r"""
x64 = rng.standard_normal((1, 6, 6, 2))
w64 = rng.standard_normal((3, 3, 2, 1))
dy = rng.standard_normal(ops.depthwise_conv2d(x64, w64).shape)


def loss(x, w):
    z = ops.depthwise_conv2d(x, w)
    return np.sum(ops.elu(z) * dy.astype(x.dtype))   # summed in the input's precision


# Chain rule: ELU's backward turns dy into dz, the depthwise backward turns dz into dx.
z = ops.depthwise_conv2d(x64, w64)
dx_analytic, _ = ops.depthwise_conv2d_backward(ops.elu_backward(dy, z), x64, w64)
a = (0, 2, 3, 1)
steps = np.logspace(-12, -0.5, 40)
errors = {}
for dtype in (np.float64, np.float32):
    xd, wd = x64.astype(dtype), w64.astype(dtype)
    errs = []
    for h in steps:
        plus, minus = xd.copy(), xd.copy()
        plus[a] += dtype(h)
        minus[a] -= dtype(h)
        numeric = (float(loss(plus, wd)) - float(loss(minus, wd))) / (2 * h)
        errs.append(abs(numeric - dx_analytic[a]) / abs(dx_analytic[a]))
    errors[np.dtype(dtype).name] = np.array(errs)

fig, ax = plt.subplots(figsize=(7, 4))
for name, errs in errors.items():
    best = int(np.argmin(errs))
    ax.loglog(steps, np.maximum(errs, 1e-17), "o-", ms=3,
              label=f"{name}: best {errs[best]:.0e} at h = {steps[best]:.0e}")
ax.axhline(1e-6, color="gray", ls=":", lw=1)
ax.set_xlabel("finite-difference step h")
ax.set_ylabel("relative error of the central difference")
ax.set_title("Rounding (left) against truncation (right)")
ax.legend()
plt.tight_layout()
plt.show()
for name, errs in errors.items():
    print(f"{name}: smallest relative error {errs.min():.1e}; at h = 1e-5 it is "
          f"{errs[np.argmin(abs(steps - 1e-5))]:.1e}")
"""),
    md(r"""
Read the float32 curve from the right. For large $h$ the truncation error falls as $h^2$, as in
float64. Below $h \approx 10^{-3}$ rounding takes over: $L$ is a sum of float32 terms, each
rounded to about 7 significant digits, and the difference of two such sums divided by $2h$ grows
like $1/h$. Far to the left the curve flattens out near 1: there $h$ is smaller than the spacing
of float32 numbers around $x[a]$, `x + h` rounds back to `x`, the two losses are identical and
the difference quotient is exactly zero, a relative error of 1. In float32 no step size gets near
the $10^{-6}$ tolerance a float64 check passes easily, so a float32 gradient check can only use
loose tolerances, and loose tolerances let real bugs through.
`gradcheck` therefore refuses float32 outright:
"""),
    code(r"""
try:
    gradcheck(lambda x: ops.relu(x), {"x": x64.astype(np.float32)},
              lambda dy, x: {"x": ops.relu_backward(dy, x)})
except TypeError as error:
    print("TypeError:", error)
"""),
    md(r"""
### Trap 2: uniform inputs hide index bugs

Suppose a backward pass returns the filter gradient **flipped** (`dw[::-1, ::-1]`), the kind of
mistake a wrong sign in an index produces. Test it on a constant image, a natural-looking "simple"
input: every tap then reads the same value, so $dw[p,q] = x_0 \sum dy$ is the same for every tap
and flipping changes nothing. Random inputs expose it at once.
"""),
    code(r"""
def flipped_dw_backward(dy, x, w):
    dx, dw = ops.depthwise_conv2d_backward(dy, x, w)
    return {"x": dx, "w": dw[::-1, ::-1].copy()}       # the bug


w = rng.standard_normal((3, 3, 2, 1))
for label, x in [("constant input", np.full((1, 6, 6, 2), 0.7)),
                 ("random input", rng.standard_normal((1, 6, 6, 2)))]:
    report = gradcheck(lambda x, w: ops.depthwise_conv2d(x, w), {"x": x, "w": w},
                       flipped_dw_backward, wrt=["w"])
    print(f"{label:>15}: max relative error of dw = {report.errors['w']:.1e}  "
          f"-> {'PASSES (bug hidden)' if report.ok() else 'fails (bug found)'}")
"""),
    md(r"""
### Your turn: batch normalization's backward pass

Trap 3 below is about batch normalization, so write its backward pass first. In training mode it
normalizes every channel with the batch's own statistics, $y = \gamma \hat x + \beta$ with
$\hat{x} = (x - \mu)/\sigma$, where $\mu$ is the channel's mean over the batch and the pixels and
$\sigma = \sqrt{\operatorname{var} + \epsilon}$, with the biased variance over the same values.
Derive $dx$ from $L = \sum y \cdot dy$, then write `batch_norm_backward_train(dy, x, gamma,
epsilon)` returning $(dx, d\gamma, d\beta)$ with $d\beta = \sum dy$ and $d\gamma = \sum
dy\,\hat x$ (sums over batch and pixels). A hint for $dx$: $\mu$ and $\sigma$
both depend on every $x$ of the channel; differentiate $\hat x$ through both, and use
$\sum \hat x = 0$. The result has three terms: one from $x$ directly, one through the mean, one
through the variance. Target: $10^{-12}$ against `ops.batch_norm_backward(..., training=True)`.
"""),
    exercise("nb02", "batch_norm_backward_train"),
    check(r"""
check_batch_norm_backward(batch_norm_backward_train)
"""),
    md(r"""
### Trap 3: an all-ones upstream gradient hides bugs

Checking with $dy = 1$ (that is, $L = \sum y$) is tempting: it needs no random numbers. But many
layers have outputs whose sum carries little information. Batch normalization in training
subtracts the batch mean, so $\sum y = N H W \sum_c \beta_c$ (summed over the batch, the pixels
and the channels) no matter what $x$ is, and the true input gradient for $dy = 1$ is exactly zero.
Forget the third term of your $dx$ (the path through the variance) and, with $dy = 1$, the bug
still returns exactly zero, so the check passes. A small checker that takes $dy$ as an argument
shows it (`gradcheck` itself always draws a random, non-uniform $dy$ for this reason):
"""),
    code(r"""
channels = 3
gamma, beta = rng.uniform(0.5, 1.5, channels), rng.standard_normal(channels)
stats = dict(moving_mean=np.zeros(channels), moving_variance=np.ones(channels))


def bn_forward(x):
    return ops.batch_norm(x, gamma, beta, **stats, training=True)[0]


def bn_backward_correct(dy, x):
    return ops.batch_norm_backward(dy, x, gamma, beta, **stats, training=True)[0]


def bn_backward_buggy(dy, x):
    # Forgets that the batch variance depends on x: drops the x_hat * mean(dy * x_hat) term.
    sigma = np.sqrt(x.var(axis=(0, 1, 2)) + 1e-3)
    return gamma / sigma * (dy - dy.mean(axis=(0, 1, 2)))


def check_with_dy(backward, x, dy, h=1e-6, samples=20):
    # Worst error over a few elements: absolute below 1, relative above (as np.isclose), so a
    # true zero gradient compares as zero instead of as rounding noise divided by rounding noise.
    analytic = backward(dy, x)
    worst = 0.0
    for flat in np.random.default_rng(1).choice(x.size, samples, replace=False):
        a = np.unravel_index(flat, x.shape)
        plus, minus = x.copy(), x.copy()
        plus[a] += h
        minus[a] -= h
        numeric = (np.sum(bn_forward(plus) * dy) - np.sum(bn_forward(minus) * dy)) / (2 * h)
        worst = max(worst, abs(numeric - analytic[a]) / max(abs(numeric), abs(analytic[a]), 1.0))
    return worst


x = rng.standard_normal((4, 3, 3, channels)) * 2 + 1
for dy_name, dy in [("all-ones dy", np.ones_like(x)), ("random dy", rng.standard_normal(x.shape))]:
    for name, backward in [("correct", bn_backward_correct), ("buggy", bn_backward_buggy)]:
        err = check_with_dy(backward, x, dy)
        print(f"{dy_name:>12}, {name:>7} backward: worst error {err:.1e} "
              f"-> {'pass' if err < 1e-6 else 'FAIL'}")
"""),
    md(r"""
### Trap 4: ties in max pooling (and ReLU at zero)

Max pooling is not differentiable where two inputs of a window tie for the maximum. With
$y = \max(a, b)$ and $a = b$, nudging $a$ up raises $y$, nudging it down does not, so the central
difference gives $1/2$, while the backward pass routes the whole gradient to one of them (here, as
in Keras, the first maximum). Neither is "wrong"; the check is simply meaningless there. Real
activations tie all the time (ReLU outputs are exactly 0 on half the inputs; 8-bit pixels take
only 256 values), so check with random continuous inputs, where ties have probability zero, and a
step $h$ far smaller than the gaps between values.
"""),
    code(r"""
pool = dict(pool_size=3, stride=2, padding="same")
for label, x in [("integer-valued input (ties)", rng.integers(0, 3, (2, 6, 6, 2)).astype(float)),
                 ("ReLU output (ties at 0)", np.maximum(rng.standard_normal((2, 6, 6, 2)), 0)),
                 ("random continuous input", rng.standard_normal((2, 6, 6, 2)))]:
    report = gradcheck(lambda x: ops.max_pool2d(x, **pool), {"x": x},
                       lambda dy, x: {"x": ops.max_pool2d_backward(dy, x, **pool)}, max_samples=72)
    print(f"{label:>28}: max relative error {report.errors['x']:.1e} "
          f"-> {'pass' if report.ok() else 'FAIL'}")
"""),
    md(r"""
### Trap 5: correlation versus convolution, which no gradient check can see

A mathematician's convolution flips the kernel; deep-learning "convolutions" do not. Suppose an
implementation flips it anyway, in the forward **and** the backward pass. Then the two are
consistent with each other, and a gradient check passes perfectly. Yet the layer computes
something different from Keras and PyTorch: load Keras's trained weights into it and every filter
is applied upside down. (Trained from scratch it would do fine, by learning flipped filters,
which is what makes the bug so quiet.)

A gradient check tests that backward matches forward. Only a comparison with an independent
implementation tests that forward is right; this project's test suite compares every op with
PyTorch in float64 for that reason.
"""),
    code(r"""
def flipped_forward(x, w):
    return ops.depthwise_conv2d(x, w[::-1, ::-1].copy())      # a true convolution


def flipped_backward(dy, x, w):
    dx, dw = ops.depthwise_conv2d_backward(dy, x, w[::-1, ::-1].copy())
    return {"x": dx, "w": dw[::-1, ::-1].copy()}               # consistent with the forward


x, w = rng.standard_normal((1, 6, 6, 2)), rng.standard_normal((3, 3, 2, 1))
report = gradcheck(flipped_forward, {"x": x, "w": w}, flipped_backward)
print("gradient check of the flipped layer:", "passes" if report.ok() else "fails",
      f"(max relative error {report.max_error:.1e})")
print("but max |flipped forward - ops.depthwise_conv2d| =",
      f"{np.abs(flipped_forward(x, w) - ops.depthwise_conv2d(x, w)).max():.2f}")
"""),
    md(r"""
## 2.6 The loss, and every op checked

Training ends in a scalar: the mean softmax cross-entropy of the logits $z$ (shape $(N, K)$)
against integer labels, $L = -\frac1N \sum_n \log \operatorname{softmax}(z_n)[y_n]$. Its
gradient is one of the nicest in deep learning: $\partial L / \partial z_n = (\operatorname{softmax}
(z_n) - \text{onehot}(y_n)) / N$.

### Your turn: the loss gradient

Write `softmax_cross_entropy_backward(logits, labels)`. One logit in the check is 800, where
`np.exp` overflows: subtract each row's maximum first (softmax does not change). Target:
$10^{-15}$ against `ops.softmax_cross_entropy_backward`.
"""),
    exercise("nb02", "softmax_cross_entropy_backward"),
    check(r"""
check_softmax_cross_entropy_backward(softmax_cross_entropy_backward)
"""),
    md(r"""
Finally, the same gradient check on the library's operations, with awkward settings where they
matter (stride 2 with lopsided `"same"` padding, dilation, batch norm in training and in inference,
label smoothing). `npxception gradcheck` on the command line runs a longer list of such cases,
and the test suite asserts them.
"""),
    code(r"""
n = rng.standard_normal
conv = dict(stride=2, padding="same")
dilated = dict(padding="same", dilation=2)
x = n((2, 6, 5, 3))
labels = np.array([1, 0, 3])
stats = dict(moving_mean=n(3), moving_variance=rng.uniform(0.5, 2, 3))


def named(names, fn):
    return lambda dy, **a: dict(zip(names, fn(dy, **a)))


cases = {
    "conv2d, stride 2 'same'": (lambda x, w: ops.conv2d(x, w, **conv), dict(x=x, w=n((3, 3, 3, 4))),
                               named("xw", lambda dy, x, w: ops.conv2d_backward(dy, x, w, **conv))),
    "depthwise, dilation 2": (lambda x, w: ops.depthwise_conv2d(x, w, **dilated), dict(x=x, w=n((3, 3, 3, 2))),
                              named("xw", lambda dy, x, w: ops.depthwise_conv2d_backward(dy, x, w, **dilated))),
    "batch_norm, training": (
        lambda x, gamma, beta: ops.batch_norm(x, gamma, beta, **stats, training=True)[0],
        dict(x=x * 2 + 1, gamma=rng.uniform(0.5, 1.5, 3), beta=n(3)),
        named(["x", "gamma", "beta"], lambda dy, x, gamma, beta: ops.batch_norm_backward(
            dy, x, gamma, beta, **stats, training=True))),
    "batch_norm, inference": (
        lambda x, gamma, beta: ops.batch_norm(x, gamma, beta, **stats)[0],
        dict(x=x * 2 + 1, gamma=rng.uniform(0.5, 1.5, 3), beta=n(3)),
        named(["x", "gamma", "beta"], lambda dy, x, gamma, beta: ops.batch_norm_backward(
            dy, x, gamma, beta, **stats))),
    "elu": (lambda x: ops.elu(x), dict(x=x), lambda dy, x: {"x": ops.elu_backward(dy, x)}),
    "max_pool2d 3x3/2 'same'": (lambda x: ops.max_pool2d(x), dict(x=x),
                                lambda dy, x: {"x": ops.max_pool2d_backward(dy, x)}),
    "dense": (lambda x, w, b: ops.dense(x, w, b), dict(x=n((3, 5)), w=n((5, 4)), b=n(4)),
              named("xwb", lambda dy, x, w, b: ops.dense_backward(dy, x, w, b))),
    "cross-entropy, smoothing 0.1": (
        lambda z: np.asarray(ops.softmax_cross_entropy(z, labels, label_smoothing=0.1)), dict(z=n((3, 5))),
        lambda dy, z: {"z": ops.softmax_cross_entropy_backward(dy, z, labels, label_smoothing=0.1)}),
}
print(f"{'operation':<30}{'input':<7}{'max rel error':>14}")
worst = 0.0
for name, (forward, inputs, backward) in cases.items():
    report = gradcheck(forward, inputs, backward)
    for key, error in report.errors.items():
        print(f"{name:<30}{key:<7}{error:>14.1e}")
    worst = max(worst, report.max_error)
print(f"\nworst error {worst:.1e}: {'all pass' if worst < 1e-6 else 'FAILURES'} at 1e-6")
"""),
    md(r"""
## Summary

* A backward pass is a vector-Jacobian product; derive it from $L = \sum y \cdot dy$.
* Pointwise: two matrix products. Depthwise: scatter each output's gradient over the window it
  gathered; the input gradient is a full convolution with the rotated kernel.
* Check in float64, with random non-uniform inputs **and** upstream gradients, away from ties and
  kinks, and remember what a gradient check cannot see: whether the forward pass itself is right.

## Exercises

1. Write the backward pass of `global_avg_pool2d` (an $(N, H, W, C)$ input, an $(N, C)$ output)
   in one line, and check it with `gradcheck` against `ops.global_avg_pool2d`.
2. Why does the sweep of 2.5 put the best float64 step near $10^{-5}$ and not near
   $\sqrt{u} \approx 10^{-8}$, the textbook value for a *forward* difference?
3. Make Trap 2 subtler: instead of flipping `dw`, swap its two spatial axes (`dw.transpose(1, 0, 2,
   3)`). Which inputs hide that bug? (Hint: think of inputs that are symmetric under a
   transposition of height and width.)
4. The ELU's derivative at 0 jumps from $1$ to $\alpha$ only if $\alpha \ne 1$. Run the tie
   experiment of Trap 4 on `ops.elu` with `alpha=1` and with `alpha=0.5` on inputs with exact
   zeros. Which one does the gradient check flag, and why?
5. (A small project) Derive and write the backward pass of a depthwise convolution with dilation
   $d$, and check it against `ops.depthwise_conv2d_backward(..., dilation=d)`.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
