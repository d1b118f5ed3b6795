"""Notebook 8: data-parallel training: a ring allreduce, its cost, gradient buckets, sync-BN."""

from cells import check, code, exercise, md

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
`mpiexec -n N`. This notebook builds the pieces and measures them:

1. the **ring allreduce**, the algorithm that makes the sum's cost per rank independent of N (you
   write it, on simulated ranks, then run it on real MPI processes);
2. its **cost model**, against the naive allgather whose cost grows with N (you write it, then feed
   it this machine's measured latency and bandwidth);
3. **gradient buckets**, which let the sums overlap the backward pass: a measured timeline;
4. **synchronised batch norm**: the formula that combines the ranks' statistics (you derive and
   write it);
5. one process against two: learning curves on top of each other.

A notebook kernel is a single process, so the MPI parts run as small programs under `mpiexec`
(installed into the environment by `pip install "npxception[mpi]"`).

**Runtime:** a few minutes on 2 cores (fast mode, the suite's: about a minute).
"""),
    code(r"""
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from exercises.checks import check_allreduce_seconds, check_combine_statistics, check_ring_allreduce
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


def cpu_name():
    # The CPU's model name (Linux), else what platform knows.
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def conditions():
    # What every timing depends on, printed beside it.
    return f"[{cpu_name()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs]"


print("mpiexec:", MPIEXEC)
"""),
    md(r"""
## 8.1 A sum whose order is fixed

After an allreduce every rank must hold the same sum, to the last bit: if two ranks' weights
differ by one rounding, they drift apart step after step. And a run is only repeatable if the sum
is taken in the same order every time, because floating-point addition is not associative:
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
An MPI library picks its own reduction algorithm (and so the order) from the message size and the
number of processes; the standard only *recommends* that the same call give the same result. So
`npxception` sums in an order of its own, and the simplest such order shows what it costs:

**Allgather, then sum.** Every rank sends its whole gradient of $B$ bytes to every other rank
(`MPI_Allgather`) and adds the $N$ arrays in rank order. Same bits everywhere, but each rank
receives $(N-1) B$ bytes: at $N = 64$ and the paper network's 91 MB of float32 gradients, 5.7 GB
per rank per step. The cost grows with $N$.

**The ring.** Put the ranks on a ring, rank $r$ sending to $r+1$ and receiving from $r-1$
(mod $N$), and cut the gradient into $N$ chunks. Two phases of $N-1$ steps each:

* *reduce-scatter*: in every step each rank sends one chunk to its right neighbour and adds the
  chunk arriving from its left neighbour into its own copy of that chunk. Each chunk travels once
  around the ring collecting one more rank's part at each hop, so after $N-1$ steps every rank
  holds one chunk summed over all ranks (a different one on each rank);
* *allgather*: $N-1$ more steps pass each finished chunk around the ring, each rank keeping what
  arrives.

With $N = 3$ and chunks A, B, C ($a_r$: rank $r$'s part of chunk A):

| step | rank 0 sends | rank 1 sends | rank 2 sends | then |
|---|---|---|---|---|
| reduce-scatter 1 | $a_0$ | $b_1$ | $c_2$ | rank 1 holds $a_0 + a_1$, rank 2 $b_1 + b_2$, rank 0 $c_2 + c_0$ |
| reduce-scatter 2 | $c_2 + c_0$ | $a_0 + a_1$ | $b_1 + b_2$ | rank 0 holds all of B, rank 1 all of C, rank 2 all of A |
| allgather 1 | B | C | A | each rank holds two finished chunks |
| allgather 2 | A | B | C | each rank holds all three |

Each rank sends $2(N-1)$ messages of $B/N$ bytes: $2(N-1)/N \cdot B$ in all, **less than $2B$ for
any $N$** (Patarasuk and Yuan 2009; Baidu's ring allreduce, then Horovod). And since each chunk
is summed once, in the order it travelled, and then copied, every rank holds the same bits.

### Your turn: the ring allreduce

Write `ring_allreduce(data, rank, size, send, recv)`, the function one rank runs. `run_ranks`
(`exercises/ranks.py`) runs it on `size` simulated ranks at once, each on a thread of its own,
with `send(to, array)` and `recv(source)` standing in for MPI's point-to-point messages. The check
runs it on 1 to 8 ranks, float32 and float64, arrays longer and shorter than the number of ranks,
and reads the message log: neighbours only, $2(N-1)$ messages per rank, one chunk each,
$2(N-1)n$ elements in all, and the same bits on every rank.
"""),
    exercise("nb08", "ring_allreduce"),
    check(r"""
check_ring_allreduce(ring_allreduce)
"""),
    md(r"""
The same function on real MPI processes: `send` becomes `comm.isend` (non-blocking, so that two
neighbours sending to each other at once do not wait for each other) and `recv` becomes
`comm.recv`. Its source is written into a program that `mpiexec` starts on 2 ranks (with 3 when
the machine has 3 cores or more).
"""),
    code(r"""
program = WORK / "ring.py"
program.write_text("import json\nimport numpy as np\nfrom mpi4py import MPI\n\n"
                   + textwrap.dedent(inspect.getsource(ring_allreduce)) + textwrap.dedent('''

    comm = MPI.COMM_WORLD
    pending = []


    def send(to, array):
        pending.append(comm.isend(np.array(array, copy=True), dest=to))


    def recv(source):
        return comm.recv(source=source)


    data = np.random.default_rng(comm.rank).standard_normal(1000)
    total = ring_allreduce(data, comm.rank, comm.size, send, recv)
    MPI.Request.Waitall(pending)
    parts, totals = comm.gather(data, root=0), comm.gather(total, root=0)
    if comm.rank == 0:
        exact = np.sum(parts, axis=0)
        print(json.dumps({"ranks": comm.size, "error": float(np.abs(totals[0] - exact).max()),
                          "same_bits": all(np.array_equal(t, totals[0]) for t in totals)}))
'''))
for n in (2, 3) if (os.cpu_count() or 1) >= 3 else (2,):
    print(mpirun(n, str(program)).strip())
"""),
    md(r"""
`npxception.distributed` sums every gradient bucket this way by default (`--reduction ring`,
`distributed/ring.py`): the same algorithm, with MPI's non-blocking messages, advanced between
the blocks of the backward pass (8.3). `--reduction ordered` is the allgather above, and
`--reduction mpi` hands the sum to `MPI_Iallreduce`.

## 8.2 What an allreduce costs

The usual model of a network (Hockney's, "alpha-beta"): a message of $b$ bytes takes
$\alpha + b / \beta$ seconds, with $\alpha$ the latency and $\beta$ the bandwidth. The ring's
$2(N-1)$ steps run one after another, each moving $B/N$ bytes per rank:

$$T_\text{ring} = 2(N-1)\,\alpha + \frac{2(N-1)}{N} \frac{B}{\beta}, \qquad
T_\text{allgather} = (N-1)\,\alpha + (N-1) \frac{B}{\beta}$$

(the allgather, itself done as a ring: $N-1$ steps, each passing one rank's whole array on). The
ring pays twice the latency terms and wins on bandwidth from $N = 3$ on; for large $N$ and large
buckets the bandwidth term is all that matters, and the ring's stays below $2B/\beta$.

### Your turn: the cost model

Write `allreduce_seconds(algorithm, ranks, nbytes, latency, bandwidth)`. The check compares it
with the formulas on 1 to 1024 ranks, with and without latency, for empty and 25 MB buckets.
"""),
    exercise("nb08", "allreduce_seconds"),
    check(r"""
check_allreduce_seconds(allreduce_seconds)
"""),
    md(r"""
Now this machine's $\alpha$ and $\beta$: two ranks bounce messages of 8 bytes to 8 MB back and
forth (a ping-pong: half a round trip is one message). The 8-byte time is the latency, and one
over the slope of a straight line through the times is the bandwidth. Between two processes on one
machine MPICH copies through shared memory: this is the best case, not a network's.
"""),
    code(r"""
program = WORK / "pingpong.py"
program.write_text(textwrap.dedent('''
    import json
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    other = 1 - comm.rank
    rows = []
    for nbytes in (8, 1024, 65536, 1 << 20, 4 << 20, 8 << 20):
        buf = np.zeros(nbytes // 8)
        repeats = 200 if nbytes <= 65536 else 20
        times = []
        for _ in range(5):
            comm.Barrier()
            start = MPI.Wtime()
            for _ in range(repeats):
                if comm.rank == 0:
                    comm.Send(buf, other)
                    comm.Recv(buf, other)
                else:
                    comm.Recv(buf, other)
                    comm.Send(buf, other)
            times.append((MPI.Wtime() - start) / repeats / 2)
        rows.append((nbytes, min(times)))  # the best of 5: load only ever makes it slower
    if comm.rank == 0:
        print(json.dumps(rows))
'''))
pingpong = json.loads(mpirun(2, str(program)))
sizes, seconds = np.array(pingpong, dtype=np.float64).T
slope, _ = np.polyfit(sizes, seconds, 1)
ALPHA, BETA = float(seconds[0]), 1 / slope   # latency: the 8-byte message itself
for nbytes, t in pingpong:
    print(f"{nbytes:>9} bytes: {t * 1e6:9.1f} us one way")
print(f"latency {ALPHA * 1e6:.1f} us, bandwidth {BETA / 1e9:.2f} GB/s  {conditions()}")
"""),
    md(r"""
What the model then says for the paper network's 91 MB of gradients, on this machine's
loopback and on a 25 Gbit/s network (3.1 GB/s, 10 us: typical numbers, assumed here, not
measured):
"""),
    code(r"""
paper_bytes = 4 * 22_855_952
ranks = np.array([2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
fig, ax = plt.subplots(figsize=(7, 3.8))
NETWORKS = ((ALPHA, BETA, "this machine's loopback"), (10e-6, 25e9 / 8, "25 Gbit/s, assumed"))
for (alpha, beta, where), style in zip(NETWORKS, ("-", "--")):
    for algorithm, color in (("ring", "tab:blue"), ("allgather", "tab:red")):
        t = [allreduce_seconds(algorithm, int(n), paper_bytes, alpha, beta) for n in ranks]
        ax.plot(ranks, t, style, color=color, marker="o", ms=3, label=f"{algorithm}, {where}")
ax.set(xscale="log", yscale="log", xlabel="ranks N", ylabel="seconds per allreduce",
       title="one allreduce of the paper network's gradients (91 MB)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
for n in (8, 64, 1024):
    ring, gather = (allreduce_seconds(a, n, paper_bytes, 10e-6, 25e9 / 8) for a in ("ring", "allgather"))
    print(f"N = {n:>4} at 25 Gbit/s: ring {ring:6.3f} s, allgather {gather:7.2f} s ({gather / ring:.0f}x)")
"""),
    md(r"""
The ring's bandwidth term stays below $2B/\beta$ (58 ms at 25 Gbit/s) whatever $N$, while the
allgather's grows linearly with $N$. The ring's latency term, $2(N-1)\alpha$, does grow: 20 ms at
1024 ranks and 10 us, a quarter of the total there. Libraries switch to trees or hierarchical
rings at that scale; and the buckets of 8.3, a few MB each, each pay the latency term once.

## 8.3 Gradient buckets: overlapping the sum with backward

Sending every weight's gradient separately costs one latency each; sending all of them after
backward leaves the network idle while backward runs and the cores idle while the sum runs. The
answer of Horovod and DDP: pack gradients into **flat buckets** of a few MB, in the order
backward produces them (the last block first), and start each bucket's ring **as soon as its
blocks are done**, while backward continues through the earlier blocks. One wait before the
optimizer step collects them.

The buckets of `small` at 1 MB and of the paper's network at 25 MB (DDP's default):
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
"""),
    md(r"""
Does the overlap happen? Two ranks run a few backward passes of `small` (of `tiny` in fast mode)
with the buckets the trainer uses (`distributed/buckets.py`), and record when each bucket's ring
starts and when it is summed, against the backward pass's own start and end. The last step's
timeline on rank 0:
"""),
    code(r"""
PRESET, BACKEND, ROWS, BUCKET_MB = ("tiny", "numpy", 16, 0.05) if FAST else ("small", "cpu", 32, 1.0)
program = WORK / "timeline.py"
program.write_text(textwrap.dedent(f'''
    import json
    import time

    import numpy as np

    import npxception
    from npxception import Xception, XceptionConfig
    from npxception.data import make_shapes
    from npxception.distributed.buckets import GradientBuckets
    from npxception.distributed.comm import Communicator

    npxception.set_num_threads(1)
    comm = Communicator()
    config = XceptionConfig.{PRESET}(num_classes=10)
    model = Xception(config, backend="{BACKEND}", seed=0)
    be = model.backend
    buckets = GradientBuckets(comm, model, bucket_mb={BUCKET_MB})
    data = make_shapes({ROWS}, config.input_shape[0], seed=comm.rank)
    x = be.to_device(data.images.astype(np.float32) / 255)
    labels = be.to_device(data.labels)
    steps = []
    for step in range(4):
        comm.barrier()
        logits = model.forward(x, True)
        dlogits = be.softmax_cross_entropy_backward(0.5, logits, labels, 0.0)
        start = time.perf_counter()
        model.backward(dlogits, on_block_done=buckets.ready, input_grad=False)
        backward_end = time.perf_counter()
        timings = buckets.finish()
        steps.append({{"backward": backward_end - start, "wait": timings["wait_s"],
                       "buckets": [(s - start, d - start) for s, d in timings["timeline"]],
                       "mb": buckets.sizes_mb()}})
    if comm.rank == 0:
        print(json.dumps(steps[1:]))  # the first step compiles (cpu) and warms the caches
'''))
steps = json.loads(mpirun(2, str(program)))
last = steps[-1]
fig, ax = plt.subplots(figsize=(8, 2.2 + 0.25 * len(last["buckets"])))
ax.barh(0, last["backward"] * 1e3, color="tab:gray", label="backward")
ax.barh(0, last["wait"] * 1e3, left=last["backward"] * 1e3, color="tab:red", label="the one wait")
for i, ((s, d), mb) in enumerate(zip(last["buckets"], last["mb"])):
    ax.barh(i + 1, (d - s) * 1e3, left=s * 1e3, color="tab:blue")
    ax.text(d * 1e3, i + 1, f" {mb:.2f} MB", va="center", fontsize=8)
ax.set(yticks=range(len(last["buckets"]) + 1),
       yticklabels=["rank 0"] + [f"bucket {i}" for i in range(len(last["buckets"]))],
       xlabel="ms from the start of backward", title=f"{PRESET}, 2 ranks: each bucket's ring, start to sum")
ax.invert_yaxis()
ax.legend(loc="lower right", fontsize=8)
plt.tight_layout()
plt.show()
for i, s in enumerate(steps):
    comm_ms = sum(d - a for a, d in s["buckets"]) * 1e3
    hidden = sum(max(0.0, min(d, s["backward"]) - a) for a, d in s["buckets"]) * 1e3
    print(f"step {i + 2}: backward {s['backward'] * 1e3:6.1f} ms, then a wait of {s['wait'] * 1e3:5.1f} ms; "
          f"the buckets' rings spanned {comm_ms:6.1f} ms, {hidden:6.1f} of them during backward")
print(conditions())
"""),
    md(r"""
The last bucket (the network's first blocks) can only start when backward ends, so some wait is
always left; the earlier ones run while backward goes on. What a bar's length means: the time
from the bucket's start to the moment this rank saw its sum complete, which includes waiting for
the other rank to reach the same bucket. On 2 cores with 2 ranks the "overlap" shares the cores
with backward; on a real network a NIC moves the bytes while the cores compute.
`benchmarks/bench_distributed.py` measures the same overlap against the buckets reduced one after
the other (`benchmarks/results/distributed_cpu.md`).

## 8.4 The same batch, split; and batch norm across ranks

`--batch-size` is the **global** batch. Each rank reads its contiguous slice of every global batch
(the order and augmentation are a pure function of seed, epoch and batch number). The dropout mask
is a hash of (seed, element index), and each rank's dropout layer is told where its slice starts,
so row *r* of a batch gets the same mask whether it sits on rank 0 of 1 or rank 1 of 2. Each rank
weights its mean loss by its share of the rows, so the **sum** of the ranks' gradients is the
gradient of the whole batch's mean loss.
"""),
    code(r"""
for n in (1, 2, 4):
    print(f"global batch 64 on {n} rank(s):", [shard_bounds(64, n, r) for r in range(n)])
print("a last batch of 10 images on 4 ranks:", [shard_bounds(10, 4, r) for r in range(4)])
"""),
    md(r"""
Batch norm is the one layer that looks across rows: it normalizes each channel by the mean and
variance of the batch. Rank $r$ sees $n_r$ of the batch's rows, with per-channel mean $\mu_r$ and
(biased) variance $\sigma_r^2$. The batch's statistics, over all $n = \sum_r n_r$ rows, follow from
those three numbers per rank. The mean is the weighted mean of the means. For the variance, write
each row's deviation from the global mean as $x - \mu = (x - \mu_r) + (\mu_r - \mu)$ and sum over
rank $r$'s rows: the cross term vanishes (the deviations from $\mu_r$ sum to 0), leaving
$n_r \sigma_r^2 + n_r (\mu_r - \mu)^2$. So

$$\mu = \frac{1}{n} \sum_r n_r \mu_r, \qquad
\sigma^2 = \frac{1}{n} \sum_r n_r \left(\sigma_r^2 + (\mu_r - \mu)^2\right)$$

(the law of total variance: the mean of the variances plus the variance of the means). Averaging
the ranks' variances alone misses the second term, which is large exactly when the ranks' rows
differ, and an unweighted average is wrong whenever a rank holds fewer rows (the last batch of an
epoch; a rank whose share is empty). With `--sync-bn` each rank sends $(n_r, \mu_r, \sigma_r^2)$
for every channel, all ranks combine them into the statistics of the whole batch, and backward
sums the two per-channel gradient sums the same way: one small message per batch-norm layer per
pass, for arithmetic that does not depend on N.

### Your turn: combining the statistics

Write `combine_statistics(counts, means, variances)`. The check compares it with the statistics
of all the rows together: ranks with equal and unequal counts, far-apart means, an empty rank.
"""),
    exercise("nb08", "combine_statistics"),
    check(r"""
check_combine_statistics(combine_statistics)
"""),
    md(r"""
## 8.5 One process against two

The same command, once as a plain process (2 threads) and once under `mpiexec -n 2` (1 thread
each), with `--sync-bn`. The arithmetic is the same; the float32 rounding is not (other summation
orders in the kernels and the reductions), and training amplifies rounding differences step after
step: after a first epoch of 3 steps on `tiny` the validation losses agree to about 1e-6 relative
(what `tests/test_distributed.py` checks, with the same arithmetic in float64 to 1e-9), and the
difference grows about tenfold per epoch; after tens of steps the two runs are as different as two
seeds. Watch the curves, not the last digit. The validation loss starts
near $\ln 10 = 2.30$ (ten classes, no idea yet) and falls well below it.
"""),
    code(r"""
if FAST:
    ARGS = ["--preset", "tiny", "--backend", "numpy", "--train-size", "512", "--val-size", "128",
            "--epochs", "3", "--batch-size", "32", "--lr", "0.05"]
else:
    ARGS = ["--preset", "small", "--backend", "cpu", "--train-size", "2048", "--val-size", "512",
            "--epochs", "4", "--batch-size", "64", "--lr", "0.05"]
common = ["-m", "npxception", "train", *ARGS, "--sync-bn", "--quiet"]
runs, seconds = {}, {}
for n in (1, 2):
    out = WORK / f"run{n}"
    start = time.perf_counter()
    if n == 1:
        subprocess.run([sys.executable, *common, "--threads", "2", "--out", str(out)], check=True, env=ENV,
                       capture_output=True)
    else:
        mpirun(2, *common, "--threads", "1", "--out", str(out))
    seconds[n] = time.perf_counter() - start
    runs[n] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"{n} process(es): final val loss {runs[n][-1]['val_loss']:.4f} (ln 10 = {np.log(10):.4f}), "
          f"top-1 {runs[n][-1]['val_top1']:.1%}")
rate = {n: np.median([r["images_per_sec"] for r in runs[n]]) for n in runs}
print(f"2 ranks x 1 thread against 1 process x 2 threads: wall time {seconds[2] / seconds[1]:.2f}x, "
      f"training images/s {rate[2] / rate[1]:.2f}x (median over epochs)  {conditions()}")
"""),
    code(r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for key, ax in (("train_loss", axes[0]), ("val_loss", axes[1])):
    for n, style in ((1, "-o"), (2, "--x")):
        ax.plot([r["epoch"] for r in runs[n]], [r[key] for r in runs[n]], style,
                label=f"{n} process{'es' if n > 1 else ''}")
    ax.axhline(np.log(10), color="gray", lw=0.8, ls=":", label="ln 10 (chance)")
    ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title=key.replace("_", " "))
    ax.legend()
plt.tight_layout()
plt.show()
print("relative difference of the validation losses, by epoch:",
      ", ".join(f"{abs(a['val_loss'] - b['val_loss']) / abs(a['val_loss']):.0e}" for a, b in zip(runs[1], runs[2])))
"""),
    md(r"""
The speed is printed as ratios from the same run, with the load beside them. On 2 cores, 2 ranks
of 1 thread and 1 process of 2 threads use the same cores, so the ratios say how well each uses
them, not what more machines would give. The wall time includes what the ranks pay twice
(starting two interpreters and MPI, loading the kernels, building the data, evaluating in
shards), which on a run this short can outweigh the training itself; the training images/s is
the steps alone, where the 2 ranks also exchange their gradients. How far the curves drift is a
property of float32 training, not of the split (on `tiny`, one process in float32 differs from
itself in float64 by as much as it differs from two processes); the float64 check in
`tests/test_distributed.py` is the one that shows the arithmetic is the same.

To run this yourself (one machine, then several with a hostfile listing them):

```bash
mpiexec -n 2 npxception train --batch-size 64 --sync-bn --threads 1
mpiexec -f hosts -n 8 npxception train --batch-size 256 --sync-bn
```

## Summary

* Data parallelism: every rank holds the model, computes gradients on its rows of the global
  batch, and the ranks sum the gradients; only rank 0 writes files.
* The ring allreduce sends $2(N-1)/N$ of the gradients per rank whatever $N$, against an
  allgather's $N-1$; each chunk is summed once in a fixed order, so every rank holds the same bits
  and a run repeats at a fixed $N$.
* Buckets in backward order, each started as soon as its blocks are done, overlap the sums with
  the rest of the backward pass.
* Synchronised batch norm combines $(n_r, \mu_r, \sigma_r^2)$ by the law of total variance; with it
  and per-sample dropout masks, N processes compute what one computes.

## Exercises

1. Run `ring_allreduce` on 8 simulated ranks (`from exercises.ranks import run_ranks`) and count
   the messages of each phase from the log `run_ranks` returns. How many does
   `--reduction ordered` (an allgather) need per rank?
2. With `allreduce_seconds`, find the bucket size below which the latency terms dominate the ring
   at 64 ranks and this machine's $\alpha$, $\beta$. What does that say about 25 MB buckets?
3. Change the timeline program's `bucket_mb` to 0.1 and to 100. How do the wait and the number
   of bars change, and why does one huge bucket overlap nothing?
4. Show that `combine_statistics` gives the same result whether the ranks are combined all at
   once or two at a time (rank 0 with 1, then the result with 2): which property of the formula
   makes a tree of partial combinations possible?

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
* P. Patarasuk and X. Yuan, *Bandwidth optimal all-reduce algorithms for clusters of
  workstations*, JPDC 2009: the ring of 8.1 and why no allreduce can send less.
* S. Li et al., *PyTorch Distributed: Experiences on Accelerating Data Parallel Training*, VLDB
  2020 ([arXiv 2006.15704](https://arxiv.org/abs/2006.15704)): gradient buckets overlapping the
  backward pass, as in 8.3, in a production system.

Codebases worth reading next to this one:

* Keras's `keras/src/applications/xception.py`: the reference Xception, whose layer names and
  weights this project loads (notebook 5).
* PyTorch's `torch/nn/parallel/distributed.py` and `torch/csrc/distributed/c10d/reducer.cpp`:
  DistributedDataParallel, with its bucketed, overlapped allreduce.
* Horovod's `horovod/common/ops/`: the ring (and hierarchical) allreduce behind its
  `DistributedOptimizer`.
* `timm` (PyTorch Image Models): Xception and its descendants, with training recipes.
* Numba's documentation on `prange` and on CUDA kernels, and NVIDIA's CUDA C++ Programming Guide
  (the chapters on the SIMT architecture and independent thread scheduling), for notebooks 3
  and 4.
"""),
    code(r"""
print(f"notebook runtime: {time.perf_counter() - T0:.1f} s" + (" (fast mode)" if FAST else ""))
"""),
]
