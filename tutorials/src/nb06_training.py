"""Notebook 6: training a small Xception on the CPU."""

from cells import check, code, exercise, md

FILENAME = "06_training_a_small_xception.ipynb"

CELLS = [
    md(r"""
# 6. Training a small Xception

Time to train. The paper trained the full network on ImageNet on 60 NVIDIA K80 GPUs, about 3
days per run (its JFT runs took over a month); here a scaled-down Xception (the `small` preset:
the same entry, middle and exit flows, a quarter of the width, two middle blocks, for 32x32
images) learns a ten-class problem in minutes on a CPU, with the paper's ImageNet recipe:

* **SGD with momentum 0.9**, learning rate 0.045 decayed by a factor 0.94 every 2 epochs,
  weight decay $10^{-5}$ (the paper's value for Xception: Inception V3's $4 \times 10^{-5}$ was
  too strong for it);
* **dropout** before the classifier: the paper uses a rate of 0.5 on ImageNet; the `small`
  preset uses 0.2;
* **weight averaging**: evaluating an average of recent weights instead of the weights
  themselves (the paper's "Polyak averaging"; 6.3 says how the average here differs).

Before handing the loop to `Trainer`, you write one training step yourself (three "your turn"
exercises, checked against the project's optimizer and averaging); more exercises close the
notebook.

The data is `npxception`'s built-in dataset: ten classes of procedurally drawn shapes and textures
(disks, rings, stars, stripes, ...) with random colours, positions, sizes, rotations and noise.
It is generated on the fly, the same on every machine, so nothing is downloaded. (The same code
trains on CIFAR-10 with `npxception.data.load_cifar10` once you have the files.)

**Runtime:** 3.0 minutes (179 s) in the stored full run on 2 quiet CPU cores, almost all of it
training, Numba compilation from a warm cache included (fast mode: a 16x16 model a sixteenth of the width, 160
images, one epoch, about 10 s).
"""),
    code(r"""
import os
import tempfile
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

from npxception import Xception, XceptionConfig, ops  # noqa: F401  (ops: for your training_step)
from npxception.data import holdout_split, make_shapes
from npxception.data.augment import augment
from npxception.train import Schedule, TrainConfig, Trainer, evaluate

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()

warnings.filterwarnings("ignore", message="IProgress not found")  # no progress widgets needed
# Fast mode: a 16x16 version with 1/16 of the width, to check that every cell runs.
N_TRAIN, N_VAL, EPOCHS, SIZE = (160, 80, 1, 16) if FAST else (4000, 1000, 6, 32)
print(f"{N_TRAIN} training images, {N_VAL} validation images, {EPOCHS} epoch(s), {SIZE}x{SIZE} pixels")
"""),
    md(r"""
## 6.1 The data

`make_shapes(count, size, seed)` draws `count` images of `size x size` pixels, classes balanced.
`holdout_split` sets aside a validation set that training never sees.
"""),
    code(r"""
data = make_shapes(N_TRAIN + N_VAL, size=SIZE, seed=0)
train_data, val_data = holdout_split(data, N_VAL, seed=0)
names = data.class_names
print("images:", data.images.shape, data.images.dtype, "| classes:", ", ".join(names))

fig, axes = plt.subplots(4, 10, figsize=(12, 5.2))
for k, name in enumerate(names):
    examples = np.flatnonzero(train_data.labels == k)[:4]
    for row, index in enumerate(examples):
        axes[row, k].imshow(train_data.images[index])
    axes[0, k].set_title(name, fontsize=9)
for ax in axes.ravel():
    ax.axis("off")
plt.suptitle("Four training images per class", y=1.0)
plt.tight_layout()
plt.show()
"""),
    md(r"""
## 6.2 Augmentation

With a few thousand images a network this size can memorize the training set. Augmentation
shows it a slightly different version of each image every epoch: a **random crop** (pad 4 black
pixels on every side, cut a window of the original size at a random offset, so the image shifts
by up to 4 pixels) and a **horizontal flip** with probability 1/2. The class does not change under either,
which is the one requirement. The trainer applies it to every training batch, never to
validation images.
"""),
    code(r"""
rng = np.random.default_rng(1)
originals = train_data.images[:6]
fig, axes = plt.subplots(4, 6, figsize=(9, 6.2))
for col in range(6):
    axes[0, col].imshow(originals[col])
for row in range(1, 4):
    versions = augment(originals, rng)
    for col in range(6):
        axes[row, col].imshow(versions[col])
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("original")
for row in range(1, 4):
    axes[row, 0].set_ylabel(f"augmented {row}")
plt.tight_layout()
plt.show()
"""),
    md(r"""
## 6.3 The model and the paper's recipe

One change from Keras's defaults matters for short runs. Batch normalization normalizes with the
batch's statistics in training, but with **moving averages** of them at inference, updated as
$m \leftarrow \text{momentum} \cdot m + (1 - \text{momentum}) \cdot \mu_\text{batch}$. Keras uses
momentum 0.99: the averages then keep $0.99^{k}$ of their initial values after $k$ steps, so after
100 steps still more than a third, and a model evaluated in a short run is normalized with
statistics that do not belong to it (validation accuracy stays near chance while training accuracy
climbs). Momentum 0.9 forgets the initial values within a few dozen steps, which suits a run of a
few hundred steps; over ImageNet's hundreds of thousands of steps 0.99 is the smoother choice.
"""),
    code(r"""
print(f"initial value left in the moving averages after 100 steps: momentum 0.99 -> {0.99**100:.0%}, "
      f"momentum 0.9 -> {0.9**100:.1e}")
config = XceptionConfig.small(bn_momentum=0.9)
if FAST:
    config = config.replace(input_shape=(SIZE, SIZE, 3), width_multiplier=1 / 16, middle_blocks=1)
model = Xception(config, backend="cpu", seed=0)
print(config)
print(f"trainable parameters: {model.num_params()['trainable']:,}; multiply-adds per image: "
      f"{sum(r.macs for r in model.layer_table()) / 1e6:.1f} M")
"""),
    md(r"""
**Learning rate.** The paper's step decay multiplies the rate by 0.94 every 2 epochs: over a
long ImageNet run it shrinks slowly. In a short run it hardly moves, which is fine for a first
look; the `cosine` schedule (`TrainConfig(schedule="cosine")`) is the usual choice when the
epoch budget is small.

**Weight averaging.** SGD's weights jitter around a good region, driven by the noise of
mini-batch gradients. The average of recent weights sits nearer the middle of that region.
Polyak and Juditsky (1992) average *all* iterates uniformly, $\bar\theta_t = \frac1t \sum_{s \le t}
\theta_s$. The trainer, like TensorFlow's `ExponentialMovingAverage`, keeps an **exponential**
moving average instead, $\bar\theta \leftarrow d\,\bar\theta + (1-d)\,\theta$ after every step:
it weights recent steps most and forgets old ones with a time scale of about $1/(1-d)$ steps
(100 for $d = 0.99$), so it follows a network that is still improving, which a uniform average over
the whole run would not. Its decay $d$ starts small (so the average is not dominated by the random
initial weights) and ramps up to the configured value.
"""),
    code(r"""
train_config = TrainConfig(epochs=EPOCHS, batch_size=64, optimizer="sgd", lr=0.045, momentum=0.9,
                           weight_decay=1e-5, schedule="step", decay_rate=0.94, decay_epochs=2,
                           ema_decay=0.99, augment=True, seed=0)
schedule = Schedule(train_config.lr, "step", EPOCHS, decay_rate=0.94, decay_epochs=2)
epochs_axis = np.linspace(0, 100, 1001)
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(epochs_axis, [schedule(t) for t in epochs_axis], label="paper: 0.045 x 0.94^floor(t/2)")
ax.axvspan(0, EPOCHS, color="tab:orange", alpha=0.3, label=f"this run ({EPOCHS} epochs)")
ax.set_xlabel("epoch")
ax.set_ylabel("learning rate")
ax.legend()
plt.tight_layout()
plt.show()
"""),
    md(r"""
## 6.4 One training step by hand

A training step is five things: a forward pass in training mode (batch statistics, dropout on),
the mean softmax cross-entropy, the backward pass, the optimizer update and the averaging update.
The model exposes the pieces: `model.forward(x, training=True)`, `model.backward(dlogits)` (which
fills every layer's gradients) and `model.trainable()`, a dict `"layer/weight" -> (param, grad)`
whose arrays the optimizer updates in place.

### Your turn: SGD with momentum and weight decay

The paper's optimizer: $g \leftarrow g + \lambda\,\theta$ (L2 weight decay, applied to kernels
only), $v \leftarrow \mu v - \eta g$, $\theta \leftarrow \theta + v$. Write `sgd_step`, updating
`p` and `velocity` in place (`p += ...`, not `p = ...`: the model holds the same array). Target:
$10^{-14}$ after three steps, against `npxception.train.SGD`.
"""),
    exercise("nb06", "sgd_step"),
    check(r"""
from exercises.checks import check_ema_step, check_sgd_step, check_training_step

check_sgd_step(sgd_step)
"""),
    md(r"""
### Your turn: the moving average of the weights

Write `ema_step(average, p, updates, decay)`, in place, with the ramped decay
$d = \min(\text{decay}, (1 + n) / (10 + n))$ after $n$ earlier updates. (The very first update,
$n = 0$, copies the weights; the check does that for you.) Target: $10^{-14}$ over 30 updates,
against `npxception.train.EMA`.
"""),
    exercise("nb06", "ema_step"),
    check(r"""
check_ema_step(ema_step)
"""),
    md(r"""
### Your turn: the whole step

Put it together in `training_step(model, images, labels, velocities, lr, momentum, weight_decay)`
with `ops.softmax_cross_entropy` and `ops.softmax_cross_entropy_backward` for the loss. The check
builds two identical float64 models of the `tiny` preset, steps one with your function and the
other with the project's optimizer, twice, and compares every weight, batch-norm statistics
included (target $10^{-12}$).
"""),
    exercise("nb06", "training_step"),
    check(r"""
check_training_step(training_step)
"""),
    md(r"""
## 6.5 Training

`Trainer` runs that step in a loop: for every batch, forward in training mode, softmax cross-entropy,
backward, SGD update, EMA update; after every epoch, an evaluation on the validation set and a
checkpoint (in a temporary folder here). The command line does the same:
`npxception train --preset small --optimizer sgd --lr 0.045 --schedule step --ema-decay 0.99`.
"""),
    code(r"""
run_dir = tempfile.TemporaryDirectory(prefix="npxception_tutorial_")  # removed at the end
trainer = Trainer(model, train_data, val_data, train_config, run_dir.name, quiet=True)
start = time.perf_counter()
history = trainer.fit()
train_minutes = (time.perf_counter() - start) / 60
print(f"trained {EPOCHS} epoch(s) in {train_minutes:.1f} minutes "
      f"({history[-1]['images_per_sec']:.0f} images/s in the last epoch)")
"""),
    md(r"""
## 6.6 Learning curves
"""),
    code(r"""
epochs = [h["epoch"] for h in history]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="training (running, augmented)")
axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", label="validation (moving average of the weights)")
axes[0].set_ylabel("cross-entropy loss")
axes[1].plot(epochs, [100 * h["train_top1"] for h in history], "o-", label="training")
axes[1].plot(epochs, [100 * h["val_top1"] for h in history], "o-", label="validation")
axes[1].axhline(100 / len(names), color="gray", ls=":", label="chance")
axes[1].set_ylabel("top-1 accuracy (%)")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
plt.tight_layout()
if not FAST:
    fig.savefig("figures/learning_curves.png", dpi=80, bbox_inches="tight")
plt.show()
last = history[-1]
print(f"final epoch: training accuracy {last['train_top1']:.1%}, validation accuracy {last['val_top1']:.1%}")
"""),
    md(r"""
Two things to know when reading these curves. The training numbers are running averages over
each epoch, measured on augmented images while the weights were still changing, with dropout on;
the validation numbers are measured once, at the end of the epoch, on clean images, in inference
mode and with the averaged weights. So validation can sit above training early on without
anything being wrong. Likewise the moving average lags behind the current weights, by design.

## 6.7 Did weight averaging help?

Evaluate the same validation set with the raw final weights and with their average:
"""),
    code(r"""
raw = evaluate(model, val_data)
averaged = trainer.evaluate()                          # swaps the EMA weights in, then back
print(f"raw final weights: loss {raw['loss']:.4f}, top-1 {raw['top1']:.1%}")
print(f"moving average:    loss {averaged['loss']:.4f}, top-1 {averaged['top1']:.1%}")
"""),
    md(r"""
Which one wins depends on the run, and the printout says which did here. Two effects pull in
opposite directions. The average smooths out the jitter of the last steps, which helps most late
in a long run with a small, decaying learning rate (the paper's setting). But with a large
learning rate the weights still travel far within the averaging window, so the average mixes
weights from different places; and batch normalization's moving statistics were collected with
the raw weights, not with their average, so the averaged network is normalized with statistics
that do not quite belong to it. In a short run at a high learning rate the second effect can
dominate; a longer run, a smaller learning rate at the end, or re-estimating the batch-norm
statistics with the averaged weights (a few forward passes in training mode) tips the balance
back.

## 6.8 What does it confuse?

Row $i$, column $j$ of the confusion matrix counts validation images of class $i$ predicted as
class $j$; a perfect classifier is diagonal.
"""),
    code(r"""
confusion = averaged["confusion"]
fig, ax = plt.subplots(figsize=(6.5, 5.5))
image = ax.imshow(confusion, cmap="Blues")
ax.set_xticks(range(len(names)), names, rotation=60)
ax.set_yticks(range(len(names)), names)
for i in range(len(names)):
    for j in range(len(names)):
        if confusion[i, j]:
            ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=8,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_title(f"validation confusion matrix (top-1 {averaged['top1']:.1%})")
plt.colorbar(image, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()
off_diagonal = confusion - np.diag(np.diag(confusion))
i, j = np.unravel_index(off_diagonal.argmax(), confusion.shape)
print(f"most frequent mistake: {names[i]} predicted as {names[j]} ({off_diagonal[i, j]} images)")
"""),
    md(r"""
## 6.9 Predictions, with pictures

`model.predict` runs inference on preprocessed images ($x / 127.5 - 1$, as Keras's Xception
expects) in batches. Softmax turns logits into probabilities. The grid shows some correct
predictions and then the most confident mistakes, in red.
"""),
    code(r"""
from npxception import preprocess_input

images = val_data.images
with trainer.ema.swapped_in(model):                   # predict with the averaged weights
    logits = model.predict(preprocess_input(images))
probs = np.exp(logits - logits.max(axis=1, keepdims=True))
probs /= probs.sum(axis=1, keepdims=True)
guesses = probs.argmax(axis=1)
wrong = np.flatnonzero(guesses != val_data.labels)
wrong = wrong[np.argsort(-probs[wrong, guesses[wrong]])][:8]       # the most confident mistakes
right = np.flatnonzero(guesses == val_data.labels)[:24 - len(wrong)]
print(f"{len(np.flatnonzero(guesses != val_data.labels))} of {len(images)} validation images "
      f"are misclassified; showing {len(right)} right and {len(wrong)} wrong")
fig, axes = plt.subplots(3, 8, figsize=(13, 5.4))
for ax, k in zip(axes.ravel(), np.concatenate([right, wrong])):
    guess, truth = guesses[k], val_data.labels[k]
    ax.imshow(images[k])
    ax.set_title(f"{names[guess]} {probs[k, guess]:.0%}\n(true: {names[truth]})", fontsize=8,
                 color="black" if guess == truth else "red")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()
"""),
    md(r"""
## Summary

* A training step is forward, loss, backward, an in-place optimizer update and an averaging
  update; `Trainer` loops over it and adds evaluation, metrics and checkpoints.
* The paper's recipe (SGD with momentum, slow step decay, weight decay, dropout, weight
  averaging) trains a scaled-down Xception on a CPU in minutes.
* Read training and validation curves knowing what each measures: augmentation, dropout,
  batch-norm mode and weight averaging all differ between the two.
* The next notebook uses this set-up to repeat two of the paper's ablations at small scale.

## Exercises

1. With decay $d = 0.99$ after the ramp, what weight does the average give to the weights of 100
   steps ago, relative to the latest? How many steps does this run take in all
   (`len(trainer.loader) * EPOCHS`), and what does that say about $d = 0.999$ for it?
2. Add Nesterov momentum to `sgd_step` ($\theta \leftarrow \theta + \mu v - \eta g$ after the
   velocity update) and check it against `npxception.train.SGD(..., nesterov=True)`.
3. Train with `TrainConfig(schedule="cosine")` and compare the final validation accuracy with the
   step decay. Plot both schedules over this run's epochs first: which one lowers the rate more?
4. Re-estimate the batch-norm statistics for the averaged weights (6.7): with the averaged
   weights swapped in, run a few training-mode forward passes on clean training images (no
   backward, no update), then evaluate. Does averaging now win?
5. Turn augmentation off (`augment=False`) and compare the gap between training and validation
   accuracy with this run's.
6. (A small project) Train the same model on CIFAR-10 with `npxception.data.load_cifar10` (the
   files need a download) and the command line: `npxception train --preset small ...`.
"""),
    code(r"""
run_dir.cleanup()                                     # the checkpoint and plots of the run
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
