"""Notebook 8: data-parallel training over MPI."""

from cells import code, md

FILENAME = "08_data_parallel_training.ipynb"

CELLS = [
    md(r"""
# 8. Training on several processes: data parallelism over MPI

The paper trained Xception on 60 GPUs. The recipe that scales such training, used by Horovod and
by PyTorch's DistributedDataParallel, is **data parallelism**: every process (a *rank*) holds the
whole model, takes its share of each batch, computes gradients on it, and the ranks **sum their
gradients** (an *allreduce*) before every one of them applies the same update. The weights stay
identical everywhere without ever being sent again.

`npxception` does this over MPI with `mpi4py`: the same `npxception train`, started by
`mpiexec -n N`. This notebook shows the three pieces and checks the claim that matters most:
**N processes compute what one process computes.**

1. the allreduce, and why the order of a floating-point sum must be fixed;
2. gradient buckets, which let communication overlap the backward pass;
3. one process against two, learning curves on top of each other.

A notebook kernel is a single process, so the MPI parts run as small programs under `mpiexec`
(installed into the environment by `pip install "npxception[mpi]"`).

**Runtime:** the stored run took 18 minutes on a 2-core machine heavily loaded by other work
(fast mode: the tiny model, under a minute).
"""),
    code(r"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from npxception import Xception, XceptionConfig
from npxception.distributed.buckets import plan_buckets
from npxception.distributed.data_parallel import shard_bounds

FAST = os.environ.get("NPXCEPTION_FAST") == "1"  # the test suite's quick mode
T0 = time.perf_counter()
warnings.filterwarnings("ignore", message="IProgress not found")
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
WORK = Path(tempfile.mkdtemp(prefix="npxception-nb08-"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}


def mpirun(n, *args):
    # Run `python ARGS` on n ranks; returns what the ranks printed.
    out = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], capture_output=True,
                         text=True, env=ENV, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout


print("mpiexec:", MPIEXEC)
"""),
    md(r"""
## 8.1 The allreduce

Each rank holds a vector; after `Allreduce(SUM)` every rank holds the sum of all of them. Here
two ranks each contribute `rank + 1` times a vector of ones. The second half of the program sums
the same numbers in a fixed order instead: every rank gathers all contributions
(`Allgather`) and adds them as rank 0 + rank 1 + ..., which is what `npxception.distributed`
does by default.
"""),
    code(r"""
program = WORK / "allreduce.py"
program.write_text(textwrap.dedent('''
    import numpy as np
    from npxception.distributed.comm import Communicator, rank_order_sum

    comm = Communicator()
    mine = np.full(4, comm.rank + 1.0, dtype=np.float32)
    total = np.empty_like(mine)
    comm.comm.Allreduce(mine, total)
    gathered = np.empty((comm.size, 4), dtype=np.float32)
    comm.comm.Allgather(mine, gathered)
    print(f"rank {comm.rank} of {comm.size}: mine {mine}, Allreduce {total}, "
          f"rank-order sum {rank_order_sum(gathered)}")
'''))
print(mpirun(2, str(program)))
"""),
    md(r"""
Why fix the order? Floating-point addition is not associative, so the same numbers summed in
another order give other bits. An MPI library may pick its reduction algorithm (and so the order)
by message size and process count; the standard only *recommends* that the same call give the same
result. Summing in rank order ourselves makes a run **bitwise repeatable** at a fixed number of
ranks, and identical on every rank.
"""),
    code(r"""
a, b, c = np.float32(1e8), np.float32(-1e8), np.float32(0.1)
print("(a + b) + c =", (a + b) + c, "   a + (b + c) =", a + (b + c))
rng = np.random.default_rng(0)
parts = rng.standard_normal((8, 100_000)).astype(np.float32)
forward, backward = parts[0].copy(), parts[-1].copy()
for p in parts[1:]:
    forward += p
for p in parts[-2::-1]:
    backward += p
print(f"8 gradients summed in two orders differ in {np.mean(forward != backward):.0%} of their elements "
      f"(by up to {np.abs(forward - backward).max():.1e})")
"""),
    md(r"""
## 8.2 Gradient buckets

Sending every weight's gradient separately costs one message latency each; sending all of them
after backward wastes the time backward takes. The answer of Horovod and DDP: pack gradients into
**flat buckets** of a few MB, in the order backward produces them (the last block first), and start
each bucket's reduction (`MPI_Iallreduce`, or here an `Iallgather` summed in rank order)
**as soon as its blocks are done**, while backward continues through the earlier blocks. One wait
before the optimizer step collects them.

Below: the buckets of `small` at 1 MB and of the paper's network at 25 MB (DDP's default).
"""),
    code(r"""
def show_buckets(model, mb):
    buckets = plan_buckets(list(reversed(model.network.layers)), int(mb * 2**20), 4)
    print(f"{len(buckets)} buckets closing at ~{mb} MB, in the order backward fills them:")
    for i, b in enumerate(buckets):
        print(f"  bucket {i}: {4 * b.size / 2**20:6.2f} MB  blocks {[blk.name for blk in b.blocks]}")
    return [4 * b.size / 2**20 for b in buckets]


small_sizes = show_buckets(Xception(XceptionConfig.small(), backend="numpy"), 1)
paper_sizes = show_buckets(Xception(XceptionConfig.paper(), backend="numpy"), 25)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, sizes, title in ((axes[0], small_sizes, "small, 1 MB buckets"), (axes[1], paper_sizes, "paper, 25 MB")):
    ax.bar(range(len(sizes)), sizes, color="tab:blue")
    ax.set(xlabel="bucket (backward order)", ylabel="MB", title=title)
plt.tight_layout()
plt.show()
"""),
    md(r"""
## 8.3 The same batch, split

`--batch-size` is the **global** batch. Each rank reads the same global batch from the loader (its
order and augmentation are a pure function of seed, epoch and batch number) and keeps a contiguous
slice. The dropout mask is a hash of (seed, element index), and each rank's dropout layer is told
where its slice starts, so row *r* of a batch gets the same mask whether it sits on rank 0 of 1 or
rank 1 of 2. Each rank weights its mean loss by its share of the rows, so the **sum** of the ranks'
gradients is the gradient of the whole batch's mean loss.

Batch norm is the one layer that looks across rows. With `--sync-bn` each rank sends its
per-channel count, mean and variance, all ranks combine them into the statistics of the whole
batch, and backward sums the two per-channel gradient sums the same way. That costs one small
message per batch-norm layer per pass, in exchange for arithmetic that does not depend on N.
"""),
    code(r"""
for n in (1, 2, 4):
    print(f"global batch 64 on {n} rank(s):", [shard_bounds(64, n, r) for r in range(n)])
print("a last batch of 10 images on 4 ranks:", [shard_bounds(10, 4, r) for r in range(4)])
"""),
    md(r"""
## 8.4 One process against two

The same command, once as a plain process (2 threads) and once under `mpiexec -n 2` (1 thread
each), with `--sync-bn`. The arithmetic is the same; the float32 rounding is not (other summation
orders in the kernels and the reductions), and training amplifies rounding differences step after
step. On `tiny` over 3 epochs the validation losses agree to about 1e-6 relative (the test suite
checks 1e-4), and in float64 the weights agree to 1e-13 (the suite checks 1e-9). Over 4 epochs of
`small` below, the two float32 runs drift apart by a few percent: watch the curves, not the last
digit.
"""),
    code(r"""
if FAST:
    ARGS = ["--preset", "tiny", "--backend", "numpy", "--train-size", "64", "--val-size", "32",
            "--epochs", "2", "--batch-size", "32", "--lr", "0.02"]
else:
    ARGS = ["--preset", "small", "--backend", "cpu", "--train-size", "768", "--val-size", "256",
            "--epochs", "4", "--batch-size", "64", "--lr", "0.02"]
common = ["-m", "npxception", "train", *ARGS, "--sync-bn", "--quiet"]
runs = {}
for n in (1, 2):
    out = WORK / f"run{n}"
    start = time.perf_counter()
    if n == 1:
        subprocess.run([sys.executable, *common, "--threads", "2", "--out", str(out)], check=True, env=ENV,
                       capture_output=True)
    else:
        mpirun(2, *common, "--threads", "1", "--out", str(out))
    runs[n] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"{n} process(es): {time.perf_counter() - start:.1f} s, final val loss {runs[n][-1]['val_loss']:.6f}")
"""),
    code(r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for key, ax in (("train_loss", axes[0]), ("val_loss", axes[1])):
    for n, style in ((1, "-o"), (2, "--x")):
        ax.plot([r["epoch"] for r in runs[n]], [r[key] for r in runs[n]], style,
                label=f"{n} process{'es' if n > 1 else ''}")
    ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title=key.replace("_", " "))
    ax.legend()
plt.tight_layout()
plt.show()
worst = max(abs(a["val_loss"] - b["val_loss"]) / abs(a["val_loss"]) for a, b in zip(runs[1], runs[2]))
print(f"largest relative difference of the validation loss: {worst:.1e}")
"""),
    md(r"""
How far the curves drift is a property of float32 training, not of the split: on `tiny`, one
process in float32 differs from itself in float64 by as much as it differs from two processes.
The float64 check in `tests/test_distributed.py` is the one that shows the arithmetic is the same.

To run this yourself (one machine, then several with a hostfile listing them):

```bash
mpiexec -n 2 npxception train --batch-size 64 --sync-bn --threads 1
mpiexec -f hosts -n 8 npxception train --batch-size 256 --sync-bn
```

## Summary

* Data parallelism: every rank holds the model, computes gradients on its rows of the global
  batch, and the ranks sum the gradients; only rank 0 writes files.
* Sums in a fixed (rank) order make runs bitwise repeatable at a fixed N.
* Buckets in backward order, each started as soon as its blocks are done, overlap communication
  with the rest of the backward pass.
* With `--sync-bn` and per-sample dropout masks, N processes compute what one computes.

## Where to go next

Papers that take the ideas of these notebooks further:

* A. G. Howard et al., *MobileNets*, 2017 ([arXiv 1704.04861](https://arxiv.org/abs/1704.04861)),
  and M. Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks*, CVPR 2018
  ([arXiv 1801.04381](https://arxiv.org/abs/1801.04381)): depthwise separable convolutions built
  for speed, and a second look at where a non-linearity hurts (compare notebook 7's Figure 10).
* M. Tan and Q. V. Le, *EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks*,
  ICML 2019 ([arXiv 1905.11946](https://arxiv.org/abs/1905.11946)): depthwise convolutions
  again, with width, depth and resolution scaled together.
* L.-C. Chen et al., *Encoder-Decoder with Atrous Separable Convolution for Semantic Image
  Segmentation* (DeepLabv3+), ECCV 2018 ([arXiv 1802.02611](https://arxiv.org/abs/1802.02611)):
  a modified, deeper Xception as a segmentation backbone, with dilated separable convolutions.
* P. Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*, 2017
  ([arXiv 1706.02677](https://arxiv.org/abs/1706.02677)): synchronous data parallelism at scale,
  the linear learning-rate scaling rule and warm-up.
* S. Li et al., *PyTorch Distributed: Experiences on Accelerating Data Parallel Training*, VLDB
  2020 ([arXiv 2006.15704](https://arxiv.org/abs/2006.15704)): gradient buckets overlapping the
  backward pass, as in 8.2, in a production system.

Codebases worth reading next to this one:

* Keras's `keras/src/applications/xception.py`: the reference Xception, whose layer names and
  weights this project loads (notebook 5).
* PyTorch's `torch/nn/parallel/distributed.py` and `torch/csrc/distributed/c10d/reducer.cpp`:
  DistributedDataParallel, with its bucketed, overlapped allreduce.
* `timm` (PyTorch Image Models): Xception and its descendants, with training recipes.
* Numba's documentation on `prange` and on CUDA kernels, and NVIDIA's CUDA C++ Programming Guide
  (the chapters on the SIMT architecture and independent thread scheduling), for notebooks 3
  and 4.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
