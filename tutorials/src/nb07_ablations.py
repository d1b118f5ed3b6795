"""Notebook 7: the paper's two ablations (Figures 9 and 10), repeated at small scale."""

from cells import check, code, exercise, md

FILENAME = "07_ablations_at_small_scale.ipynb"

CELLS = [
    md(r"""
# 7. The paper's ablations at small scale

The paper ([arXiv 1610.02357](https://arxiv.org/abs/1610.02357)) reports two ablations, both on
ImageNet:

* **Section 4.6, Figure 9: residual connections.** Xception with and without its residual
  connections. Without them the network still trains, but much more slowly, and ends clearly
  lower. The paper adds two caveats: the non-residual model was trained with the optimization
  settings tuned for the residual one, and the result says that residual connections matter for
  *this* architecture, not that stacks of depthwise separable convolutions need them (it reports
  good results with a non-residual, VGG-style network of separable convolutions).
* **Section 4.7, Figure 10: an activation inside the separable convolution.** A ReLU or an ELU
  between each depthwise and pointwise step, against no activation (Xception's choice). No
  activation converged faster and ended better. The paper's conjecture: the depthwise step works
  on 1-channel feature spaces, too shallow for a non-linearity to help, so it only loses
  information, unlike in Inception modules, whose intermediate spaces are deep.

Here both comparisons run on the built-in ten-class shapes dataset, with a Xception of the full
depth (8 middle blocks) but an eighth of the width, on 16x16 images, for 6 epochs. To answer the
paper's first caveat, **every variant gets its own learning rate** from a small search; then each
variant trains with **3 new seeds**, and the verdicts use a test that means something with 3 runs
per side. This is not ImageNet: a small, easy dataset, short runs, few seeds. Whatever comes out
says what happens *at this scale*.

**Runtime:** 24 training runs, each printing one line when it ends: 8.6 minutes (515 s) in the
stored full run on 2 quiet CPU cores, Numba compilation from a warm cache included. Fast mode: a
tiny model on 64 images, one epoch, one learning rate, two seeds, about 25 s.
"""),
    code(r"""
import contextlib
import io
import itertools  # noqa: F401  (for your permutation_p_value)
import math
import os
import tempfile
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

from npxception import Xception, XceptionConfig
from npxception.data import holdout_split, make_shapes
from npxception.train import TrainConfig, Trainer

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
warnings.filterwarnings("ignore", message="IProgress not found")  # no progress widgets needed

if FAST:
    N_TRAIN, N_VAL, N_TEST, EPOCHS, LEARNING_RATES, SEEDS = 64, 32, 48, 1, [0.045], [1, 2]
    BASE = XceptionConfig.small(input_shape=(16, 16, 3), width_multiplier=1 / 16, middle_blocks=1,
                                bn_momentum=0.9)
else:
    N_TRAIN, N_VAL, N_TEST, EPOCHS, LEARNING_RATES, SEEDS = 2000, 400, 400, 6, [0.005, 0.015, 0.045], [1, 2, 3]
    BASE = XceptionConfig.small(input_shape=(16, 16, 3), width_multiplier=1 / 8, middle_blocks=8,
                                bn_momentum=0.9)
SEARCH_SEED = 0
print(BASE)
"""),
    md(r"""
## 7.1 The set-up

Four variants of the same network, differing in one switch each:

| variant | `intermediate_activation` | `residual` |
|---|---|---|
| Xception (the paper's choice) | `None` | `True` |
| ReLU inside the separable convolutions | `"relu"` | `True` |
| ELU inside the separable convolutions | `"elu"` | `True` |
| no residual connections | `None` | `False` |

Every run uses the paper's optimizer (SGD with momentum 0.9, the learning rate decayed by 0.94
every 2 epochs, weight decay $10^{-5}$), dropout 0.2 before the classifier (the `small` preset;
the paper uses 0.5 on ImageNet), no weight averaging (to compare the raw training dynamics) and
batch-norm momentum 0.9 (notebook 6 explains why, for short runs). The seed sets the initial
weights, the batch order, the augmentation and the dropout masks.

The data is split three ways: **training** images, a **validation** set used only to pick each
variant's learning rate, and a **test** set used only for the final comparison, so that the
choice of learning rate cannot flatter the numbers it is judged by.

The switches change the parameter count only for the residual connections, whose 1x1 shortcut
convolutions disappear:
"""),
    code(r"""
VARIANTS = {
    "none (Xception)": dict(intermediate_activation=None, residual=True),
    "ReLU": dict(intermediate_activation="relu", residual=True),
    "ELU": dict(intermediate_activation="elu", residual=True),
    "no residual": dict(intermediate_activation=None, residual=False),
}
COLORS = {"none (Xception)": "tab:blue", "ReLU": "tab:red", "ELU": "tab:purple", "no residual": "tab:gray"}
for name, switches in VARIANTS.items():
    model = Xception(BASE.replace(**switches), backend="cpu")
    print(f"{name:<16} {model.num_params()['trainable']:>9,} trainable parameters")

data = make_shapes(N_TRAIN + N_VAL + N_TEST, size=BASE.input_shape[0], seed=0)
rest, test_data = holdout_split(data, N_TEST, seed=0)
train_data, val_data = holdout_split(rest, N_VAL, seed=1)
print(f"{len(train_data)} training, {len(val_data)} validation, {len(test_data)} test images")


def train_variant(switches, lr, seed, eval_data):
    # One run; returns the per-epoch history, evaluated on eval_data after every epoch.
    model = Xception(BASE.replace(**switches), backend="cpu", seed=seed)
    config = TrainConfig(epochs=EPOCHS, batch_size=64, optimizer="sgd", lr=lr, momentum=0.9,
                         weight_decay=1e-5, schedule="step", decay_rate=0.94, decay_epochs=2,
                         ema_decay=0.0, augment=True, seed=seed)
    # The trainer prints a line per epoch; one line per run (below) is enough here.
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
        return Trainer(model, train_data, eval_data, config, run_dir, quiet=True).fit()


def progress(stage, name, lr, seed, history, seconds):
    last = history[-1]
    print(f"{stage:<6} {name:<16} lr {lr:<6} seed {seed}: train loss {last['train_loss']:.3f}, "
          f"{'val' if stage == 'search' else 'test'} top-1 {last['val_top1']:6.1%}  ({seconds:4.1f} s)",
          flush=True)
"""),
    md(r"""
## 7.2 A learning rate for every variant

One run per variant and learning rate, with seed 0, judged on the validation set by the final
accuracy. The grid is small (three rates, a factor of 3 apart around values that work for this
network), so it finds a reasonable rate, not the best one.
"""),
    code(r"""
search = {}
for name, switches in VARIANTS.items():
    for lr in LEARNING_RATES:
        start = time.perf_counter()
        search[name, lr] = train_variant(switches, lr, SEARCH_SEED, val_data)
        progress("search", name, lr, SEARCH_SEED, search[name, lr], time.perf_counter() - start)

BEST_LR = {name: max(LEARNING_RATES, key=lambda lr: (search[name, lr][-1]["val_top1"],
                                                     -search[name, lr][-1]["val_loss"]))
           for name in VARIANTS}
print("\nchosen learning rates:", BEST_LR)

fig, ax = plt.subplots(figsize=(6.5, 3.5))
for name in VARIANTS:
    ax.plot(LEARNING_RATES, [100 * search[name, lr][-1]["val_top1"] for lr in LEARNING_RATES], "o-",
            color=COLORS[name], label=name)
ax.axhline(10, color="k", ls=":", lw=1, label="chance (10 classes)")
ax.set_xscale("log")
ax.set_xticks(LEARNING_RATES, [str(lr) for lr in LEARNING_RATES])
ax.set_xlabel("learning rate")
ax.set_ylabel("final validation top-1 (%)")
ax.set_title(f"Learning-rate search (seed {SEARCH_SEED}, {EPOCHS} epochs)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
"""),
    md(r"""
## 7.3 Three seeds per variant, at its own learning rate

Seeds 1 to 3 are new: the search used seed 0, so the runs that decide the comparison played no
part in choosing the learning rate.
"""),
    code(r"""
histories = {}
for name, switches in VARIANTS.items():
    histories[name] = []
    for seed in SEEDS:
        start = time.perf_counter()
        histories[name].append(train_variant(switches, BEST_LR[name], seed, test_data))
        progress("final", name, BEST_LR[name], seed, histories[name][-1], time.perf_counter() - start)
"""),
    md(r"""
### Your turn: mean and spread over seeds

Three runs are not many. Summarize them by their mean and their **sample** standard deviation
(`ddof=1`, which divides by $n - 1$: the plain standard deviation of 3 values underestimates the
spread of the runs they come from).
"""),
    exercise("nb07", "seed_band"),
    check(r"""
from exercises.checks import check_seed_band, check_permutation_p_value

check_seed_band(seed_band)
"""),
    code(r"""
def curves(name, key):
    return np.array([[100 * h[key] if "top1" in key else h[key] for h in run] for run in histories[name]])


epochs = np.arange(1, EPOCHS + 1)
fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex=True)
groups = [["none (Xception)", "ReLU", "ELU"], ["none (Xception)", "no residual"]]
for col, group in enumerate(groups):
    for row, (key, label) in enumerate([("val_top1", "test top-1 accuracy (%)"),
                                        ("train_loss", "training loss")]):
        ax = axes[row, col]
        for name in group:
            mean, std = seed_band(curves(name, key))
            ax.plot(epochs, mean, "o-", color=COLORS[name], label=f"{name} (lr {BEST_LR[name]})")
            ax.fill_between(epochs, mean - std, mean + std, color=COLORS[name], alpha=0.2)
        if key == "val_top1":
            ax.axhline(10, color="k", ls=":", lw=1, label="chance")
        else:
            ax.axhline(math.log(10), color="k", ls=":", lw=1, label="ln 10: guessing")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[1, col].set_xlabel("epoch")
    axes[1, col].set_xticks(epochs)
axes[0, 0].set_title("Figure 10 at small scale: activation between depthwise and pointwise")
axes[0, 1].set_title("Figure 9 at small scale: with and without residual connections")
fig.suptitle(f"Mean of {len(SEEDS)} seeds; bands: plus and minus one standard deviation", y=1.0)
plt.tight_layout()
if not FAST:
    fig.savefig("figures/ablations.png", dpi=80, bbox_inches="tight")
plt.show()

print(f"{'variant':<16}{'lr':>7}{'final test top-1':>22}{'final training loss':>24}")
for name in VARIANTS:
    acc, loss = curves(name, "val_top1")[:, -1], curves(name, "train_loss")[:, -1]
    sd_acc = acc.std(ddof=1) if len(acc) > 1 else float("nan")
    sd_loss = loss.std(ddof=1) if len(loss) > 1 else float("nan")
    print(f"{name:<16}{BEST_LR[name]:>7}{acc.mean():>13.1f}% ± {sd_acc:<5.1f}"
          f"{loss.mean():>16.3f} ± {sd_loss:.3f}")
"""),
    md(r"""
## 7.4 A verdict rule for three seeds

"A is better than B" from 3 runs each needs a rule that knows how little 3 runs say. The rule
here is an **exact permutation test**: if the variant made no difference, the six final
accuracies would be exchangeable, and each of the $\binom{6}{3} = 20$ ways of labelling three of
them "A" would be equally likely. The p-value is the fraction of labellings whose mean difference
is at least the observed one. The smallest possible value is $1/20 = 0.05$, reached only when
all three runs of A beat all three of B. So the rule is:

* **agrees with the paper**: p = 0.05 in the paper's direction (complete separation);
* **opposite of the paper**: p = 0.05 in the other direction;
* **cannot tell**: anything else. With 3 seeds that is a common, honest outcome; it is not
  evidence that the variants are equal.

The rule counts a separation in either direction, so with no real effect a claim comes out
"separated" by luck with probability $2 \times 0.05 = 0.1$ (complete separation one way or the
other). Three claims are tested, so the chance that at least one of them does is larger still, up
to $3 \times 0.1 = 0.3$ (exercise 2 works it out): read a single separation with that in mind.

### Your turn: the exact permutation test
"""),
    exercise("nb07", "permutation_p_value"),
    check(r"""
check_permutation_p_value(permutation_p_value)
"""),
    code(r"""
CLAIMS = [("no residual connections is worse (Figure 9)", "none (Xception)", "no residual"),
          ("no activation beats ReLU (Figure 10)", "none (Xception)", "ReLU"),
          ("no activation beats ELU (Figure 10)", "none (Xception)", "ELU")]
smallest_p = 1 / math.comb(2 * len(SEEDS), len(SEEDS))


def verdict(a, b, values):
    # The paper's direction is "a > b"; values(name) -> one number per seed (higher is better).
    towards, against = permutation_p_value(values(a), values(b)), permutation_p_value(values(b), values(a))
    if towards <= smallest_p + 1e-12 and smallest_p <= 0.05:
        return "agrees with the paper", towards
    if against <= smallest_p + 1e-12 and smallest_p <= 0.05:
        return "OPPOSITE of the paper", towards
    return "cannot tell", towards


measures = [("final test top-1", lambda n: curves(n, "val_top1")[:, -1], " points"),
            ("final training loss", lambda n: -curves(n, "train_loss")[:, -1], "")]
print(f"(smallest p-value possible with {len(SEEDS)} seeds per side: {smallest_p:.3f})\n")
VERDICTS = {}
for claim, a, b in CLAIMS:
    print(claim)
    for label, values, unit in measures:
        text, p = verdict(a, b, values)
        gap = values(a).mean() - values(b).mean()
        VERDICTS[claim, label] = text
        print(f"    {label:<20}: advantage of {a} {gap:+.3g}{unit}, p = {p:.2f} -> {text}")

learned = {name: (curves(name, "val_top1")[:, -1].mean(), curves(name, "train_loss")[:, -1].mean())
           for name in VARIANTS}
print()
for name, (acc, loss) in learned.items():
    # Guessing among 10 classes scores 10% with a standard error of sqrt(0.1 * 0.9 / N_TEST)
    # (1.5 points for 400 test images): "learns" asks for 3 standard errors above chance.
    status = ("learns" if acc > 10 + 300 * math.sqrt(0.09 / N_TEST) and loss < math.log(10)
              else "does NOT clearly learn")
    print(f"{name:<16} final test top-1 {acc:5.1f}%, training loss {loss:.3f} (ln 10 = 2.303): {status}")
"""),
    md(r"""
## 7.5 Reading the outcome

The verdict lines above are computed from the runs of this execution; read them with the
learning check below them. A variant that does "NOT clearly learn" (final training loss above
$\ln 10$, the loss of guessing, and test accuracy within three standard errors of chance) has
not been compared with anything: a verdict against it says only that one network trained and the
other did not in 6 epochs at the best of three learning rates. In the paper's Figure 9 the
non-residual network does train, more slowly, so "no residual does not learn at all here" is a
*stronger* failure than the paper's, and a hint that its learning rate or its budget is off, not
a reproduction.

**What the stored run shows.** Residual connections: without them the network did not learn
(final training loss 2.55 ± 0.05, above $\ln 10$; test accuracy 10.9% ± 3.7 against 10% chance,
even at the best of its three learning rates), while Xception reached 56.7% ± 1.0. The verdict
line says "worse, agrees with the paper", and the direction does agree, but the size does not: in
Figure 9 the non-residual network trains, only more slowly. Here it is a failure to train at all in
6 epochs, the sharper version of the paper's own warning that the non-residual model was run with
hyper-parameters tuned for the residual one. Activations: ReLU inside the separable convolutions
was worse than none (40.4% ± 12.3 against 56.7% ± 1.0, p = 0.05, the smallest p three seeds allow),
as in Figure 10, though one of its three seeds (52.5%) came close to Xception's, so the effect is
large but not steady. ELU was indistinguishable from none (56.0% ± 0.2, p = 0.20 on accuracy and
0.75 on training loss): "cannot tell", where the paper finds ELU between none and ReLU. One
execution, three seeds per variant: another execution will move these numbers by about their
standard deviations.

Things to keep in mind whatever the verdicts:

* **Scale.** The paper trained on 1.2 million ImageNet images (and on JFT); these runs see 2,000
  images of ten simple classes for 6 epochs. Effects that build up over long training, or that
  need a hard dataset, can be invisible here; effects seen here may vanish at scale.
* **Depth is what residual connections are for.** With all 8 middle blocks these models are as
  deep as the paper's, so the residual ablation is the more faithful of the two.
* **The learning-rate search is small.** One seed per rate and three rates: a variant's best
  rate may lie between or beyond them. The paper's first caveat is answered only in part.
* **Three seeds** can separate only large, consistent effects; "cannot tell" is not "equal".
"""),
    md(r"""
## Exercises

1. With 4 seeds per variant, what is the smallest p-value the permutation test can give? With 5?
   How many seeds would you need for the rule above to work at a 1% level?
2. The three claims are tested together. Under the rule above, what is the probability that at
   least one of them comes out "separated" when no variant makes any difference? (Assume the
   three tests are independent; are they?)
3. Extend `LEARNING_RATES` to five values (0.0015 to 0.135) for the non-residual variant only.
   Does its best rate move, and does that change the Figure 9 verdict?
4. Put the residual connections back but remove batch normalization's effect on short runs by
   using `bn_momentum=0.99` (Keras's default). Which variants suffer most, and why (notebook 6)?
5. Rerun the Figure 10 comparison with `middle_blocks=2`. The paper's argument for no activation
   is about the 1-channel depthwise spaces, not about depth: should the verdict change?
6. (A project) Repeat the comparison on CIFAR-10 with `npxception.data.load_cifar10` at 32x32,
   with `XceptionConfig.small()`, and as many seeds as your machine allows.

## Summary

* `XceptionConfig(intermediate_activation=..., residual=...)` switches reproduce the two
  ablations; everything else stays the same.
* Give every variant its own learning rate before comparing them, and keep the data that picks
  it apart from the data that judges.
* With a handful of seeds, use a rule whose error rate you know (here, an exact permutation
  test) and say "cannot tell" when the runs overlap.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
