"""Notebook 5: the Xception architecture, its parameter count, its padding, and parity with Keras."""

from cells import check, code, exercise, md

FILENAME = "05_building_xception.ipynb"

CELLS = [
    md(r"""
# 5. Building Xception

Notebooks 1 to 4 built and checked the pieces. This one assembles the network of the paper's
Figure 5: an **entry flow** that shrinks a 299x299 image to 19x19 while widening it to 728
channels, a **middle flow** of eight identical residual blocks, and an **exit flow** that goes to
2048 channels before the classifier. We will

* count the parameters by hand, layer by layer, and arrive at the paper's **22,855,952**;
* build the model with `npxception` and read its summary table;
* see why TensorFlow's `"same"` padding rule matters at the 74x74 max pool, and what PyTorch
  would need to reproduce it;
* load a Keras Xception's weights and compare the two networks' outputs;
* read what the full network achieved in the paper, and where to read further.

Two "your turn" exercises (TensorFlow's padding rule, the parameter count of a scaled network) are
checked against the model itself; more exercises close the notebook.

**Runtime:** measured 6.8 minutes on 2 CPU cores of a busy shared machine, most of it importing
and running Keras (fast mode: about 15 s, at the smallest input Keras accepts, 71x71). Nothing is
downloaded: the Keras model gets random weights.
"""),
    code(r"""
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on its PyTorch backend

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from npxception import Xception, XceptionConfig, ops

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
rng = np.random.default_rng(0)
"""),
    md(r"""
## 5.1 The architecture, and its parameters by hand

Every convolution in Xception is followed by batch normalization, and no convolution has a bias
(batch norm's $\beta$ would cancel it). Batch norm has 4 numbers per channel: $\gamma$ and $\beta$
are trained, the moving mean and variance are not. A separable convolution with a 3x3 window from
$C_\text{in}$ to $C_\text{out}$ channels has $9 C_\text{in} + C_\text{in} C_\text{out}$ weights
(notebook 1). The blocks:

| flow | block | layers | output at 299 |
|---|---|---|---|
| entry | 1 | conv 32 3x3 stride 2, conv 64 3x3 (both "valid") | 147x147x64 |
| entry | 2 | sepconv 128, ReLU, sepconv 128, max pool 3x3/2; shortcut: conv 1x1/2 | 74x74x128 |
| entry | 3, 4 | ReLU, sepconv, ReLU, sepconv, max pool; shortcut conv 1x1/2 (256, 728) | 19x19x728 |
| middle | 5 to 12 | 3 x (ReLU, sepconv 728); identity shortcut | 19x19x728 |
| exit | 13 | ReLU, sepconv 728, ReLU, sepconv 1024, max pool; shortcut conv 1x1/2 | 10x10x1024 |
| exit | 14 | sepconv 1536, ReLU, sepconv 2048, ReLU | 10x10x2048 |
| head | | global average pool, dropout, dense 1000 (with bias) | 1000 |

Counting, with a few helper functions:
"""),
    code(r"""
def conv(k, cin, cout):
    return k * k * cin * cout


def sepconv(cin, cout):
    return 9 * cin + cin * cout


def bn(c):
    return {"trainable": 2 * c, "frozen": 2 * c}        # gamma, beta | moving mean, variance


blocks = {}                                              # block -> (trainable, frozen)


def add_block(name, convs, bn_channels):
    trainable = sum(convs) + sum(bn(c)["trainable"] for c in bn_channels)
    frozen = sum(bn(c)["frozen"] for c in bn_channels)
    blocks[name] = (trainable, frozen)


add_block("block1 (stem)", [conv(3, 3, 32), conv(3, 32, 64)], [32, 64])
for b, (cin, c1, c2) in {2: (64, 128, 128), 3: (128, 256, 256), 4: (256, 728, 728)}.items():
    add_block(f"block{b}", [sepconv(cin, c1), sepconv(c1, c2), conv(1, cin, c2)], [c1, c2, c2])
for b in range(5, 13):
    add_block(f"block{b}", [sepconv(728, 728)] * 3, [728] * 3)
add_block("block13", [sepconv(728, 728), sepconv(728, 1024), conv(1, 728, 1024)], [728, 1024, 1024])
add_block("block14", [sepconv(1024, 1536), sepconv(1536, 2048)], [1536, 2048])
add_block("head (dense + bias)", [2048 * 1000 + 1000], [])

for name, (trainable, frozen) in blocks.items():
    if name in ("block6", "block7", "block8", "block9", "block10", "block11"):
        continue
    print(f"{name:<22}{trainable:>12,} trainable{frozen:>9,} frozen"
          + ("   (blocks 6-11: the same again)" if name == "block5" else ""))
hand_trainable = sum(t for t, _ in blocks.values())
hand_frozen = sum(f for _, f in blocks.values())
print(f"\n{'total':<22}{hand_trainable:>12,} trainable{hand_frozen:>9,} frozen"
      f"  = {hand_trainable + hand_frozen:,} parameters")
print(f"paper (Table 3): 22,855,952 trainable -> {'match' if hand_trainable == 22_855_952 else 'MISMATCH'}")
middle = sum(blocks[f"block{b}"][0] for b in range(5, 13))
tail = sepconv(1536, 2048) + blocks["head (dense + bias)"][0]
print(f"share of the trainable weights: middle flow {middle / hand_trainable:.0%}, "
      f"last separable conv + classifier {tail / hand_trainable:.0%}")
"""),
    md(r"""
## 5.2 The model

`Xception(XceptionConfig.paper())` builds exactly that network out of `npxception.nn` layers,
with Keras's layer names, so that `block4_sepconv2_bn` means the same layer here, in Keras and in
the published weight files. Its summary also counts multiply-adds per image.
"""),
    code(r"""
model = Xception(XceptionConfig.paper(), backend="numpy", seed=0)
counts = model.num_params()
print(counts)
print("model == hand count:", counts["trainable"] == hand_trainable and counts["non_trainable"] == hand_frozen)
print()
summary = model.summary().splitlines()
print("\n".join(summary[:14]))                            # the stem and the start of block 2
print(f"... {len(summary) - 26} more lines ...")
print("\n".join(summary[-12:]))                          # the exit flow, the head and the totals
"""),
    md(r"""
The paper speaks of **36 convolutional layers**. The summary has 40: the 2 regular convolutions of
the stem (block 1), 34 separable convolutions, and the four 1x1 shortcut convolutions of blocks 2,
3, 4 and 13, regular convolutions that the paper's count of the network's "feature extraction
base" leaves out:
"""),
    code(r"""
kinds = [r.kind for r in model.layer_table()]
stem = sum(1 for r in model.layer_table() if r.kind == "Conv2D" and r.name.startswith("block1_"))
print(f"Conv2D {kinds.count('Conv2D')} (stem {stem}, shortcuts {kinds.count('Conv2D') - stem}), "
      f"SeparableConv2D {kinds.count('SeparableConv2D')}")
print(f"the paper's 36 = {stem} + {kinds.count('SeparableConv2D')}; all convolutions: "
      f"{kinds.count('Conv2D') + kinds.count('SeparableConv2D')}")
"""),
    md(r"""
Where do the parameters and the computation sit? Summing the summary's rows per block:
"""),
    code(r"""
rows = model.layer_table()


def block_of(name):
    return name.split("_")[0] if name.startswith("block") else "head"


names = list(dict.fromkeys(block_of(r.name) for r in rows))
params = np.array([sum(r.params for r in rows if block_of(r.name) == b) for b in names])
macs = np.array([sum(r.macs for r in rows if block_of(r.name) == b) for b in names])
side = [next(r.output_shape for r in reversed(rows) if block_of(r.name) == b) for b in names]

fig, axes = plt.subplots(1, 2, figsize=(13, 4))
flow_colors = {"entry flow": "tab:blue", "middle flow": "tab:green", "exit flow": "tab:red",
               "head (pool, dropout, dense)": "tab:gray"}
colors = (["tab:blue"] * 4 + ["tab:green"] * 8 + ["tab:red"] * 2 + ["tab:gray"])[:len(names)]
axes[0].bar(names, params / 1e6, color=colors)
axes[0].set_ylabel("parameters (millions)")
axes[1].bar(names, macs / 1e9, color=colors)
axes[1].set_ylabel("multiply-adds per image (billions)")
for ax in axes:
    ax.tick_params(axis="x", rotation=60)
axes[0].legend(handles=[Patch(color=c, label=label) for label, c in flow_colors.items()], fontsize=8)
axes[0].set_title("Parameters per block")
axes[1].set_title(f"Computation per block: {macs.sum() / 1e9:.2f} G multiply-adds in all")
plt.tight_layout()
if not FAST:
    fig.savefig("figures/xception_blocks.png", dpi=80, bbox_inches="tight")
plt.show()
print("output shape after each block:", dict(zip(names, side)))
flows = {"entry (blocks 1-4)": names[:4], "middle (blocks 5-12)": names[4:12],
         "exit (blocks 13-14 and head)": names[12:]}
for flow, members in flows.items():
    pick = [names.index(b) for b in members]
    print(f"{flow:<30} {params[pick].sum() / params.sum():4.0%} of the parameters, "
          f"{macs[pick].sum() / macs.sum():4.0%} of the multiply-adds")
"""),
    md(r"""
The two pictures differ: the entry flow has few parameters, but it works at 147x147 and 74x74,
so its share of the arithmetic is far larger than its share of the weights, while the exit flow
is the other way round. Training speed therefore depends on the depthwise and pointwise kernels at
high resolution as much as on the big matrix products at the end.

## 5.3 TensorFlow's "same" padding, and the 74x74 max pool

A $k \times k$ window with stride $s$ and `padding="same"` must produce $\lceil n / s \rceil$
outputs from $n$ inputs. TensorFlow pads

$$
\text{total} = \max\big((\lceil n/s \rceil - 1)\, s + k - n,\ 0\big), \qquad
\text{before} = \lfloor \text{total} / 2 \rfloor, \quad \text{after} = \text{total} - \text{before},
$$

so when the total is odd, the extra pixel goes at the **bottom and right**.

### Your turn: TensorFlow's padding rule

Write `same_padding(n, k, s)`, returning `(before, after)` for one axis. The check pads inputs
with $-\infty$ by your amounts, max-pools them with `padding="valid"`, and compares with
`ops.max_pool2d(..., padding="same")` for every size from 3 to 11, window 1 to 3 and stride 1
to 3 (target: no case differs). Then it prints what Xception's max pools (3x3, stride 2) get:
"""),
    exercise("nb05", "same_padding"),
    check(r"""
from exercises.checks import check_same_padding, check_xception_params

check_same_padding(same_padding)
for n in (147, 74, 37, 19):
    top, bottom = same_padding(n, 3, 2)
    print(f"{n:>3} -> {-(-n // 2):>2}: pad {top} before, {bottom} after")
"""),
    md(r"""
At 147 the padding is symmetric, (1, 1). At 74 it is **(0, 1)**: nothing on top, one row at the
bottom. PyTorch's pooling and convolution layers only pad symmetrically. `padding=1` there also
yields 37 outputs from 74, so nothing crashes, but every window sits one pixel up and to the left
of TensorFlow's. The windows of the first few outputs, as rows of the padded input:
"""),
    code(r"""
fig, ax = plt.subplots(figsize=(10, 3.2))
for row, before in enumerate([0, 1]):
    for out in range(5):
        start = out * 2 - before                          # first input index of this window
        ax.barh(row + out * 0.14, 3, left=start - 0.5, height=0.12, color=f"C{out}",
                label=f"output {out}" if row == 0 else None)
ax.axvspan(-1.5, -0.5, color="0.85", zorder=0, label="padding")
ax.set_xlim(-1.5, 10.5)
ax.set_yticks([0.28, 1.28], ["TensorFlow 'same':\npad (0, 1)", "symmetric:\npad (1, 1)"])
ax.invert_yaxis()
ax.set_xticks(range(-1, 11))
ax.set_xlabel("input index (-1 is padding)")
ax.set_title("Windows of max-pool outputs 0-4 at the start of a 74-pixel axis")
ax.legend(ncol=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))
plt.tight_layout()
plt.show()

x = rng.standard_normal((1, 74, 74, 8))
tf_same = ops.max_pool2d(x, pool_size=3, stride=2, padding="same")
symmetric = ops.max_pool2d(x, pool_size=3, stride=2, padding=1)
print("output shapes:", tf_same.shape, symmetric.shape)
print(f"outputs that differ: {np.mean(tf_same != symmetric):.0%}")
"""),
    md(r"""
To match Keras in PyTorch one pads explicitly first (with $-\infty$ for a max pool, so padding
never wins) and then pools without padding. A check against PyTorch's own pooling:
"""),
    code(r"""
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

if torch is not None:
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)                  # NCHW for PyTorch
    torch_symmetric = F.max_pool2d(xt, 3, 2, padding=1).permute(0, 2, 3, 1).numpy()
    padded = F.pad(xt, (0, 1, 0, 1), value=-np.inf)               # (left, right, top, bottom)
    torch_tf_rule = F.max_pool2d(padded, 3, 2).permute(0, 2, 3, 1).numpy()
    print("PyTorch padding=1          == ops symmetric:", np.array_equal(torch_symmetric, symmetric))
    print("PyTorch explicit (0,1) pad == ops 'same':   ", np.array_equal(torch_tf_rule, tf_same))
else:
    print("PyTorch is not installed; skipping the comparison")
"""),
    md(r"""
A model that gets this wrong still trains; it just cannot use Keras's published weights, whose
every later layer was trained on the windows TensorFlow chose.

## 5.4 Parity with Keras

The strongest check of the whole assembly: build `keras.applications.Xception` with random
weights (no download), copy its weights into our model by layer name, and compare the logits
for the same images. Keras 3 runs here on its PyTorch backend, so this also compares against
PyTorch's convolution kernels. Random batch-norm statistics make sure inference-mode batch norm
is not the identity.

Keras leaves the four shortcut convolutions unnamed; `npxception.io.keras_to_state_dict` matches
them by order and checks their widths. (`model.load_keras_weights(path)` does the same for a
legacy HDF5 weight file, such as the published ImageNet weights.)
"""),
    code(r"""
try:
    import keras
except ImportError:                                  # Keras is optional (pip install keras torch)
    keras = None

from npxception.io import keras_to_state_dict


def keras_parity(size):
    # Random Keras Xception -> our model by layer name; returns (ours, Keras) logits and timings.
    keras.utils.set_random_seed(0)
    keras_model = keras.applications.Xception(weights=None, input_shape=(size, size, 3),
                                              classifier_activation=None)
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.2, 0.2, c),
                               rng.uniform(-0.2, 0.2, c), rng.uniform(0.5, 1.5, c)])
    # Keras 3 names a weight "kernel"; older versions "block1_conv1/kernel:0": keep the bare name.
    keras_layers = [(layer.name, {w.name.split("/")[-1].split(":")[0]: np.asarray(w.numpy())
                                  for w in layer.weights})
                    for layer in keras_model.layers if layer.weights]
    ours = Xception(XceptionConfig.paper(input_shape=(size, size, 3)), backend="cpu")
    ours.load_state_dict(keras_to_state_dict(keras_layers, ours))
    print(f"Keras: {keras_model.count_params():,} parameters; ours: {ours.num_params()['total']:,}")

    images = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)   # already preprocessed
    start = time.perf_counter()
    expected = np.asarray(keras_model.predict(images, verbose=0))
    t_keras = time.perf_counter() - start
    start = time.perf_counter()
    logits = ours.predict(images)
    return logits, expected, t_keras, time.perf_counter() - start


if keras is None:
    print("Keras is not installed: skipping the parity check")
else:
    size = 71 if FAST else 299                       # 71: the smallest input Keras accepts
    logits, expected, t_keras, t_ours = keras_parity(size)
    rel = np.abs(logits - expected).max() / np.abs(expected).max()
    print(f"logits {logits.shape} at {size}x{size}: max |ours - Keras| / max |Keras| = {rel:.1e} (float32)")
    print(f"same top class for every image: {np.array_equal(logits.argmax(1), expected.argmax(1))}")
    print(f"time for 2 images: Keras {t_keras:.2f} s, npxception cpu backend {t_ours:.2f} s")
"""),
    md(r"""
Agreement at the level of float32 rounding (unit roundoff $6 \times 10^{-8}$, accumulated over
more than a hundred layers summed in different orders) is the best two float32 implementations
can do; a wrong padding, a transposed kernel or a missing batch norm would give errors of order
1.

## 5.5 Smaller networks for a CPU

The full network at 299x299 costs the multiply-adds counted above per image, forward only; training
on a laptop needs something smaller. `XceptionConfig` keeps the architecture's shape and scales it:
`width_multiplier` scales every channel count, `middle_blocks` sets how many of the 8 middle
blocks to keep, and `small_input_stem` makes the first convolution stride 1, for 32x32 images.
"""),
    code(r"""
for name, cfg in [("paper", XceptionConfig.paper()), ("small", XceptionConfig.small()),
                  ("tiny", XceptionConfig.tiny())]:
    m = Xception(cfg, backend="numpy")
    table = m.layer_table()
    print(f"{name:>6}: input {cfg.input_shape}, width x{cfg.width_multiplier:.3g}, "
          f"{cfg.middle_blocks} middle blocks: {m.num_params()['trainable']:>11,} trainable params, "
          f"{sum(r.macs for r in table) / 1e6:>8,.1f} M multiply-adds per image")
"""),
    md(r"""
### Your turn: the parameter count at any width

Generalize the hand count of 5.1: write `xception_params(width_multiplier, middle_blocks,
num_classes)` for a network whose channel counts $c$ all become `round(c * width_multiplier)`
(Python's `round`, as `XceptionConfig.width` does). The check builds the model for three
configurations, the paper's among them, and compares (target: every count exact). How close to
a quarter of 22,855,952 is the count at width x0.5, and why not exactly a quarter?
"""),
    exercise("nb05", "xception_params"),
    check(r"""
check_xception_params(xception_params)
print(f"width x0.5: {xception_params(0.5, 8, 1000) / xception_params(1.0, 8, 1000):.3f} of the paper's count")
"""),
    md(r"""
The next notebook trains the `small` preset.

## 5.6 What the full network achieved

The paper trained Xception and Inception V3 on ImageNet and on JFT, Google's internal dataset of
350 million images in 17,000 classes, evaluated on FastEval14k (14,000 images, about 6,000
classes) by MAP@100. All numbers below are the paper's (single model, single crop). Every network
was trained on 60 NVIDIA K80 GPUs: on ImageNet with data parallelism and **synchronous** gradient
descent, for the best accuracy (about 3 days per run); on JFT with **asynchronous** gradient
descent, to train faster (over a month per run), and the JFT models were **not trained to
convergence**, which would have taken over three months each.

The two datasets got different recipes, the same for Xception and Inception V3 (tuned for
Inception V3; the paper did not tune them for Xception):

| | optimizer | momentum | initial learning rate | decay | dropout |
|---|---|---|---|---|---|
| ImageNet | SGD | 0.9 | 0.045 | x0.94 every 2 epochs | 0.5 before the classifier |
| JFT | RMSprop | 0.9 | 0.001 | x0.9 every 3,000,000 samples | none (overfitting unlikely) |

The one regularization setting changed for Xception is the **weight decay**: Inception V3's
$4 \times 10^{-5}$, tuned for ImageNet, was "quite suboptimal" for Xception, which uses
$10^{-5}$ on both datasets. Neither network has Inception V3's auxiliary classifier tower, and
all models are evaluated with Polyak averaging of the weights.

| ImageNet (Table 1) | top-1 accuracy | top-5 accuracy |
|---|---|---|
| VGG-16 | 0.715 | 0.901 |
| ResNet-152 | 0.770 | 0.933 |
| Inception V3 | 0.782 | 0.941 |
| **Xception** | **0.790** | **0.945** |

| JFT, FastEval14k MAP@100 (Table 2) | without FC layers | with FC layers |
|---|---|---|
| Inception V3 | 6.36 | 6.50 |
| **Xception** | **6.70** | **6.78** |

| size and speed (Table 3) | parameters | training steps per second |
|---|---|---|
| Inception V3 | 23,626,728 | 31 |
| Xception | 22,855,952 | 28 |

Xception has slightly *fewer* parameters than Inception V3, so the gains come from using them
better, not from having more. It is somewhat slower per step; the paper expects engine-level
optimizations of the depthwise convolution, then less optimized than the regular one, to close
that gap. The gain is
larger on JFT than on ImageNet; the paper suggests that Inception V3 had been designed with
ImageNet in mind and may be over-fitted to it.

## Further reading

* F. Chollet, *Xception: Deep Learning with Depthwise Separable Convolutions*, CVPR 2017,
  [arXiv 1610.02357](https://arxiv.org/abs/1610.02357): the paper these notebooks follow.
* C. Szegedy et al., *Going Deeper with Convolutions* (Inception V1), CVPR 2015,
  [arXiv 1409.4842](https://arxiv.org/abs/1409.4842), and *Rethinking the Inception
  Architecture for Computer Vision* (Inception V3), CVPR 2016,
  [arXiv 1512.00567](https://arxiv.org/abs/1512.00567): the modules Xception takes to the extreme.
* K. He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016,
  [arXiv 1512.03385](https://arxiv.org/abs/1512.03385): the residual connections.
* S. Ioffe and C. Szegedy, *Batch Normalization*, ICML 2015,
  [arXiv 1502.03167](https://arxiv.org/abs/1502.03167).
* L. Sifre, *Rigid-Motion Scattering for Image Classification*, PhD thesis, École Polytechnique,
  2014: depthwise separable convolutions in a network, the history the paper cites.
* A. G. Howard et al., *MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications*, 2017, [arXiv 1704.04861](https://arxiv.org/abs/1704.04861): the same layer,
  built for speed, with width and resolution multipliers like `XceptionConfig`'s.
* B. T. Polyak and A. B. Juditsky, *Acceleration of Stochastic Approximation by Averaging*, SIAM
  Journal on Control and Optimization, 1992: the averaging the paper evaluates with, a uniform
  average of the iterates; notebook 6's exponential moving average is a variant that forgets.

## Exercises

1. Where do the 2,049,000 parameters of the classifier go if the head is replaced by a 1x1
   convolution to 1000 channels followed by global average pooling? Count them.
2. How many parameters would block 5 have if its three separable convolutions were regular 3x3
   convolutions? What share of the whole network would the middle flow then be?
3. At a 71x71 input (the smallest Keras accepts), what is the feature map size after every block?
   Check your answer with `Xception(XceptionConfig.paper(input_shape=(71, 71, 3))).layer_table()`.
4. Why does the entry flow take a large share of the multiply-adds but a small share of the
   parameters (5.2)? Compute the ratio of multiply-adds to parameters for block 2 and for block 14.
5. (A small project) Reproduce the parity check of 5.4 with the published ImageNet weights
   (`model.load_keras_weights(path)` with Keras's HDF5 file, a download) and a real photograph
   through `npxception.preprocess_input`; do both networks give the same top-5 classes?

## Summary

* Xception's "36 convolutional layers" in 14 blocks (12 with residual connections) are the 2
  regular convolutions of the stem and 34 depthwise separable ones; the four 1x1 shortcut
  convolutions are regular too and not counted, which is why the summary lists 40. Counting by
  hand gives the paper's 22,855,952 trainable parameters.
* TensorFlow's "same" padding puts an odd extra pixel at the bottom/right; at the 74x74 max pool
  that shifts every window, so reproducing Keras needs explicit asymmetric padding.
* With the same weights, this implementation and Keras agree to float32 rounding.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
