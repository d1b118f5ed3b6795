"""Checks for the tutorials' "your turn" exercises.

Each `check_*` function takes the student's function and first reads it (`grading.audit`: no call
into `npxception.ops`, the backends, the optimizers or the solutions; for the Numba and CUDA
exercises, the loops that make them parallel), then compares its results with an independent
reference (usually `npxception.ops`) case by case, prints the worst error against a stated target
and raises AssertionError naming every output and case that missed it. The notebooks call them
right after each exercise; the tests in this folder call them on the functions in
`exercises/nbNN.py` (`pytest tutorials/exercises`).
"""

from __future__ import annotations

import ast
import itertools
import math

import numpy as np

from exercises import grading
from exercises.grading import audit, refuse
from npxception import ops


class Grade:
    """The errors of one exercise, per output and case, against one target.

    `done()` prints one line (so that a check as the last line of a cell prints only that) and
    raises AssertionError listing each (output, case) above the target.
    """

    def __init__(self, name: str, target: float):
        self.name, self.target, self.worst, self.failures = name, target, 0.0, []

    def add(self, output: str, case: str, error: float) -> None:
        error = float(error)
        if not error <= self.worst:              # NaN counts as the worst
            self.worst = error
        if not error <= self.target:
            self.failures.append(f"{output} is wrong for {case} (error {error:.3g})")

    def fail(self, output: str, case: str, why: str) -> None:
        self.worst = math.inf
        self.failures.append(f"{output} for {case}: {why}")

    def compare(self, output: str, case: str, mine, expected, relative: bool = False) -> None:
        mine, expected = np.asarray(mine, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        if mine.shape != expected.shape:
            self.fail(output, case, f"shape {mine.shape}, expected {expected.shape}")
            return
        error = float(np.abs(mine - expected).max()) if mine.size else 0.0
        if relative:
            error /= max(float(np.abs(expected).max()), 1e-30)
        self.add(output, case, error)

    def done(self) -> None:
        ok = not self.failures
        print(f"{self.name}: error {self.worst:.1e} (target <= {self.target:.0e}): {'ok' if ok else 'TOO LARGE'}")
        if not ok:
            shown = "; ".join(self.failures[:6]) + (f"; and {len(self.failures) - 6} more"
                                                     if len(self.failures) > 6 else "")
            raise AssertionError(f"{self.name}: above the target {self.target:.0e}: {shown}")


def shape(a) -> str:
    return "x".join(str(d) for d in np.shape(a))


# --------------------------------------------------------------------------- notebook 1
def check_cost_ratio(cost_ratio) -> None:
    # The closed form M / Cout + M / k^2, against the student's count of weights.
    audit(cost_ratio, "cost_ratio")
    grade = Grade("cost_ratio", 1e-12)
    for k, c_in, c_out, m in [(3, 64, 128, 1), (3, 728, 728, 1), (5, 32, 64, 2), (7, 16, 48, 3), (1, 8, 8, 1)]:
        grade.add("the ratio", f"k {k}, Cin {c_in}, Cout {c_out}, multiplier {m}",
                  abs(cost_ratio(k, c_in, c_out, m) - (m / c_out + m / k**2)))
    grade.done()


def check_depthwise_strided(depthwise_strided) -> None:
    audit(depthwise_strided, "depthwise_strided")
    rng = np.random.default_rng(11)
    grade = Grade("depthwise_strided", 1e-12)
    for dims, k, m, s in [((2, 9, 10, 3), 3, 1, 2), ((1, 11, 8, 2), 3, 2, 3), ((2, 7, 7, 4), 5, 1, 1),
                          ((1, 8, 9, 2), 2, 3, 2)]:
        x, w = rng.standard_normal(dims), rng.standard_normal((k, k, dims[3], m))
        grade.compare("y", f"stride {s}, multiplier {m}, x {shape(x)}, {k}x{k} kernel",
                      depthwise_strided(x, w, s), ops.depthwise_conv2d(x, w, stride=s))
    grade.done()


def check_separable_kernel(separable_kernel) -> None:
    audit(separable_kernel, "separable_kernel")
    rng = np.random.default_rng(12)
    grade = Grade("separable_kernel", 1e-12)
    for c_in, m, c_out in [(4, 1, 6), (3, 2, 5), (2, 3, 7)]:
        case = f"multiplier {m}, {c_in} -> {c_out} channels"
        x = rng.standard_normal((2, 6, 7, c_in))
        d, p = rng.standard_normal((3, 3, c_in, m)), rng.standard_normal((1, 1, c_in * m, c_out))
        kernel = np.asarray(separable_kernel(d, p))
        if kernel.shape != (3, 3, c_in, c_out):
            grade.fail("K", case, f"shape {kernel.shape}, expected {(3, 3, c_in, c_out)}")
            continue
        grade.compare("conv2d(x, K)", case, ops.conv2d(x, kernel), ops.separable_conv2d(x, d, p))
        for c in range(c_in):  # rank <= M: the factorization's constraint
            rank = np.linalg.matrix_rank(kernel[:, :, c, :].reshape(9, c_out))
            if rank > m:
                grade.fail("K", case, f"channel {c}'s spatial patterns have rank {rank} > M = {m}")
    grade.done()


# --------------------------------------------------------------------------- notebook 2
def check_depthwise_backward_strided(depthwise_backward_strided) -> None:
    audit(depthwise_backward_strided, "depthwise_backward_strided")
    rng = np.random.default_rng(21)
    grade = Grade("depthwise_backward_strided (dx and dw)", 1e-12)
    for dims, k, m, s in [((2, 9, 8, 3), 3, 1, 2), ((1, 10, 11, 2), 3, 2, 3), ((2, 7, 6, 2), 3, 1, 1)]:
        x, w = rng.standard_normal(dims), rng.standard_normal((k, k, dims[3], m))
        dy = rng.standard_normal(ops.depthwise_conv2d(x, w, stride=s).shape)
        case = f"stride {s}, multiplier {m}, x {shape(x)}, {k}x{k} kernel"
        mine = depthwise_backward_strided(dy, x, w, s)
        for output, a, b in zip(("dx", "dw"), mine, ops.depthwise_conv2d_backward(dy, x, w, stride=s)):
            grade.compare(output, case, a, b)
    grade.done()


def check_batch_norm_backward(batch_norm_backward_train) -> None:
    audit(batch_norm_backward_train, "batch_norm_backward_train")
    rng = np.random.default_rng(22)
    grade = Grade("batch_norm_backward_train (dx, dgamma, dbeta)", 1e-12)
    for dims in [(4, 3, 3, 2), (2, 5, 4, 3)]:
        c = dims[3]
        x, dy = rng.standard_normal(dims) * 2 + 1, rng.standard_normal(dims)
        gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
        mine = batch_norm_backward_train(dy, x, gamma, 1e-3)
        theirs = ops.batch_norm_backward(dy, x, gamma, beta, np.zeros(c), np.ones(c), training=True,
                                         epsilon=1e-3)
        for output, a, b in zip(("dx", "dgamma", "dbeta"), mine, theirs):
            grade.compare(output, f"x {shape(x)}", a, b)
    grade.done()


def check_softmax_cross_entropy_backward(softmax_cross_entropy_backward) -> None:
    audit(softmax_cross_entropy_backward, "softmax_cross_entropy_backward")
    rng = np.random.default_rng(23)
    grade = Grade("softmax_cross_entropy_backward", 1e-15)
    logits = rng.standard_normal((6, 5)) * 3
    labels = rng.integers(0, 5, 6)
    big = logits.copy()
    big[0] += 800.0  # a naive exp overflows here
    for case, z in [("logits of size 3", logits), ("a row of logits near 800 (exp overflows)", big)]:
        grade.compare("dlogits", case, softmax_cross_entropy_backward(z.copy(), labels),
                      ops.softmax_cross_entropy_backward(1.0, z, labels))
    grade.done()


# --------------------------------------------------------------------------- notebook 3
def _parallel_numba(fn, name: str) -> None:
    # Parallelism is the point of these exercises: a plain function, a serial @njit or a range
    # loop under parallel=True would pass every comparison of results.
    audit(fn, name)
    parallel = grading.numba_parallel(fn)
    if parallel is None:
        refuse(name, "it is not a Numba function: decorate it with @njit(parallel=True) and loop with prange")
    if not parallel:
        refuse(name, "it is compiled without parallel=True, so prange runs on one thread: "
                     "use @njit(parallel=True)")
    if not grading.prange_loops(fn):
        refuse(name, "it has no prange loop: under parallel=True only prange splits a loop over threads")
    problems = grading.races(fn)
    if problems:
        refuse(name, f"it races: {problems[0]}")


def _threads_agree(grade: Grade, output: str, case: str, run, repeats: int = 4) -> np.ndarray:
    """Run on 1 thread, then `repeats` times on 2, and require the same bits every time.

    A race shows only where threads overlap, so the shapes are large and the comparison is
    bitwise; the source check above catches the classic race even on a machine with one core.
    """
    import numba

    before = numba.get_num_threads()
    most = min(2, numba.config.NUMBA_NUM_THREADS)
    try:
        numba.set_num_threads(1)
        one = np.array(run())
        numba.set_num_threads(most)
        for k in range(repeats):
            again = np.array(run())
            if not np.array_equal(one, again):
                grade.fail(output, case, f"run {k + 1} on {most} threads gives other bits than 1 thread "
                                         "(a race, or a split that depends on the thread count)")
                break
    finally:
        numba.set_num_threads(before)
    if most < 2:
        print(f"  ({output}: Numba has 1 thread here, so only the source was checked for races)")
    return one


def check_input_grad_gather(input_grad_gather) -> None:
    _parallel_numba(input_grad_gather, "input_grad_gather")
    rng = np.random.default_rng(31)
    grade = Grade("input_grad_gather", 1e-12)
    for dims, k in [((3, 9, 8, 5), 3), ((4, 34, 34, 8), 3), ((2, 12, 10, 3), 2)]:
        x, w = rng.standard_normal(dims), rng.standard_normal((k, k, dims[3], 1))
        dy = rng.standard_normal(ops.depthwise_conv2d(x, w).shape)
        case = f"x {shape(x)}, {k}x{k} kernel"
        dx = _threads_agree(grade, "dx", case, lambda dy=dy, w=w, x=x: input_grad_gather(dy, w, x.shape[1], x.shape[2]))
        grade.compare("dx", case, dx, ops.depthwise_conv2d_backward(dy, x, w)[0])
    grade.done()


def check_filter_grad_by_channel(filter_grad_by_channel) -> None:
    _parallel_numba(filter_grad_by_channel, "filter_grad_by_channel")
    rng = np.random.default_rng(32)
    grade = Grade("filter_grad_by_channel", 1e-12)
    for dims, k in [((4, 12, 11, 6), 3), ((16, 34, 34, 8), 3), ((3, 10, 9, 5), 2)]:
        x, w = rng.standard_normal(dims), rng.standard_normal((k, k, dims[3], 1))
        dy = rng.standard_normal(ops.depthwise_conv2d(x, w).shape)
        case = f"x {shape(x)}, {k}x{k} kernel"
        dw = _threads_agree(grade, "dw", case, lambda dy=dy, x=x, k=k: filter_grad_by_channel(dy, x, k, k))
        grade.compare("dw", case, dw, ops.depthwise_conv2d_backward(dy, x, w)[1][..., 0], relative=True)
    grade.done()


# --------------------------------------------------------------------------- notebook 4
def _cuda_kernel(kernel, name: str):
    fn = grading.kernel_function(kernel)
    if fn is None:
        refuse(name, "it is not a @cuda.jit kernel")
    audit(kernel, name)
    return fn


def _work_split(grade: Grade, case: str, elements_of: dict, threads_of: dict, groups: dict) -> None:
    """Every element read by one thread only, and no thread of a group doing more than its even
    share; `groups` maps a group (the grid, or a block) to (its threads, its elements)."""
    for element, threads in threads_of.items():
        if len(threads) > 1:
            grade.fail("the work split", case, f"element {element} was computed by {len(threads)} threads "
                                               "(the loop covers some elements more than once)")
            return
    for group, (members, total) in groups.items():
        share = grading.even_share(total, len(members))
        for who in members:
            done = len(elements_of.get(who, ()))
            if done > share:
                grade.fail("the work split", case,
                           f"thread {who[1][0]} of block {who[0][:2]} did {done} of the {total} elements of "
                           f"{group}; split evenly over its {len(members)} threads none does more than {share}")
                return


def check_axpy(axpy_kernel) -> None:
    _cuda_kernel(axpy_kernel, "axpy_kernel")
    # The loop itself: a grid-stride loop starts at the thread's global index and steps by the
    # whole grid. A block-sized step or one thread doing everything gives the right numbers too.
    loops = grading.range_loops(axpy_kernel)
    if not any(grading.is_grid_size(step) and grading.chains_in(start) & {"cuda.grid", "cuda.threadIdx.x"}
               for _, start, step in loops):
        steps = ", ".join(f"`range({ast.unparse(start)}, ..., {ast.unparse(step)})`" for _, start, step in loops)
        refuse("axpy_kernel", "no grid-stride loop: the loop must start at the thread's index cuda.grid(1) and "
                              "step by the whole grid, cuda.gridsize(1) (= cuda.blockDim.x * cuda.gridDim.x)"
               + (f"; found {steps}" if steps else "; found no range loop"))
    rng = np.random.default_rng(41)
    grade = Grade("axpy (grid-stride loop)", 1e-6)
    for n, blocks, threads in [(1000, 2, 32), (37, 4, 16), (5, 1, 8)]:  # fewer threads than elements
        case = f"{n} elements, {blocks} blocks x {threads} threads"
        x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        out = np.zeros_like(x)
        if grading.cuda_simulated():
            device_x, elements_of, threads_of = grading.counting_array(x)
        else:
            device_x = x
        axpy_kernel[blocks, threads](np.float32(2.5), device_x, y, out)
        grade.compare("out", case, out, 2.5 * x.astype(np.float64) + y, relative=True)
        if grading.cuda_simulated():
            grid = [((b, 0, 0), (t, 0, 0)) for b in range(blocks) for t in range(threads)]
            _work_split(grade, case, elements_of, threads_of, {"the array": (grid, n)})
    grade.done()


def check_filter_grad_cuda(filter_grad_kernel) -> None:
    fn = _cuda_kernel(filter_grad_kernel, "filter_grad_kernel")
    name = "filter_grad_kernel"
    threads = int(fn.__globals__.get("THREADS", 32))
    chains = grading.chains_in(grading.function_tree(filter_grad_kernel))
    if any(c.startswith("cuda.atomic") for c in chains):
        refuse(name, "it uses cuda.atomic: this exercise adds the partial sums in shared memory with a tree "
                     "(a fixed order, the same bits every run), not with atomic additions")
    if "cuda.shared.array" not in chains:
        refuse(name, "it keeps no partial sums in shared memory (cuda.shared.array)")
    barriers = grading.calls_to(filter_grad_kernel, "cuda.syncthreads")
    if not any(in_loop for _, in_loop in barriers) or all(in_loop for _, in_loop in barriers):
        refuse(name, "it needs a barrier, cuda.syncthreads(), after every thread wrote its partial sum and "
                     f"one after each level of the tree; found {len(barriers)}, "
                     f"{sum(in_loop for _, in_loop in barriers)} of them in a loop")
    if not any(grading.chains_in(start) & {"cuda.threadIdx.x"}
               and (grading.chains_in(step) & {"cuda.blockDim.x", "THREADS"})
               for _, start, step in grading.range_loops(filter_grad_kernel)):
        refuse(name, "no thread-strided loop over the pixels: thread t must sum pixels t, t + THREADS, "
                     "t + 2 THREADS, ... (a loop range(t, pixels, THREADS) with t = cuda.threadIdx.x)")
    rng = np.random.default_rng(42)
    grade = Grade("filter_grad_cuda (float32)", 1e-5)
    for dims, kh, kw in [((2, 7, 6, 3), 3, 3), ((1, 5, 4, 2), 3, 3), ((3, 6, 7, 2), 2, 3)]:
        n_img, h, w_in, c = dims
        case = f"x {shape(np.empty(dims))}, {kh}x{kw} kernel ({n_img * (h - kh + 1) * (w_in - kw + 1)} pixels)"
        x = rng.standard_normal(dims).astype(np.float32)
        dy = rng.standard_normal((n_img, h - kh + 1, w_in - kw + 1, c)).astype(np.float32)
        dw = np.zeros((kh, kw, c), dtype=np.float32)
        if grading.cuda_simulated():
            device_x, elements_of, threads_of = grading.counting_array(x)
        else:
            device_x = x
        filter_grad_kernel[(kh * kw, c), threads](device_x, dy, dw)
        expected = ops.depthwise_conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                                 np.zeros((kh, kw, c, 1)))[1][..., 0]
        grade.compare("dw", case, dw, expected, relative=True)
        if grading.cuda_simulated():
            pixels = dy.shape[0] * dy.shape[1] * dy.shape[2]
            blocks = {f"block {(b, ch)}": ([((b, ch, 0), (t, 0, 0)) for t in range(threads)], pixels)
                      for b in range(kh * kw) for ch in range(c)}
            # Blocks of different taps read the same x elements, so only the shares are compared.
            _work_split(grade, case, elements_of, {}, blocks)
    grade.done()


# --------------------------------------------------------------------------- notebook 5
def check_same_padding(same_padding) -> None:
    # A "same" max pool equals a "valid" max pool of the input padded with -inf by your amounts.
    audit(same_padding, "same_padding")
    rng = np.random.default_rng(51)
    grade = Grade("same_padding (cases that differ from 'same')", 0)
    wrong = 0
    for n in range(3, 12):
        for k in (1, 2, 3):
            for s in (1, 2, 3):
                x = rng.standard_normal((1, n, n, 1))
                before, after = same_padding(n, k, s)
                padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), constant_values=-np.inf)
                ours = ops.max_pool2d(padded, pool_size=k, stride=s, padding="valid")
                theirs = ops.max_pool2d(x, pool_size=k, stride=s, padding="same")
                if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
                    wrong += 1
                    grade.failures.append(f"(before, after) is wrong for n {n}, window {k}, stride {s}: "
                                          f"you gave {(before, after)}")
    grade.worst = wrong
    grade.done()


def check_xception_params(xception_params) -> None:
    from npxception import Xception, XceptionConfig

    audit(xception_params, "xception_params")
    grade = Grade("xception_params (configurations that differ)", 0)
    wrong = 0
    for m, blocks, classes in [(1.0, 8, 1000), (0.5, 8, 1000), (0.3, 3, 10)]:
        config = XceptionConfig.paper(input_shape=(71, 71, 3), width_multiplier=m, middle_blocks=blocks,
                                      num_classes=classes)
        expected = Xception(config, backend="numpy").num_params()["trainable"]
        got = xception_params(m, blocks, classes)
        print(f"  width x{m}, {blocks} middle blocks, {classes} classes: {got:,} (model: {expected:,})")
        if got != expected:
            wrong += 1
            grade.failures.append(f"the count is wrong for width x{m}, {blocks} middle blocks, {classes} classes "
                                  f"({got:,}, the model has {expected:,})")
    grade.worst = wrong
    grade.done()


# --------------------------------------------------------------------------- notebook 6
def check_sgd_step(sgd_step) -> None:
    from npxception.train import SGD

    audit(sgd_step, "sgd_step")
    rng = np.random.default_rng(61)
    grade = Grade("sgd_step (after 3 steps)", 1e-14)
    for momentum, decay in [(0.9, 1e-2), (0.0, 0.0), (0.5, 0.1)]:
        case = f"momentum {momentum}, weight decay {decay}"
        p, v = rng.standard_normal((4, 3)), np.zeros((4, 3))
        p_ref, v_ref, reference = p.copy(), v.copy(), SGD("numpy", momentum=momentum, weight_decay=decay)
        for _ in range(3):
            g = rng.standard_normal((4, 3))
            v_ref = momentum * v_ref - 0.1 * (g + decay * p_ref)   # the docstring's velocity
            sgd_step(p, g, v, 0.1, momentum, decay)
            reference.step({"layer/kernel": (p_ref, g.copy())}, 0.1)
        grade.compare("p", case, p, p_ref)
        grade.compare("velocity", case, v, v_ref)
    grade.done()


def check_ema_step(ema_step) -> None:
    from npxception.train import EMA

    audit(ema_step, "ema_step")
    rng = np.random.default_rng(62)
    grade = Grade("ema_step (30 updates)", 1e-14)
    reference, average = EMA("numpy", decay=0.99), None
    for updates in range(30):
        p = rng.standard_normal((3, 2))
        reference.update({"layer/kernel": (p, p)})
        if average is None:
            average = p.copy()   # the first update copies the weights
        else:
            ema_step(average, p, updates, 0.99)
        grade.compare("average", f"update {updates + 1} (ramped decay {min(0.99, updates / (9 + updates)):.3f})",
                      average, reference.state_dict()["layer/kernel"])
    grade.done()


def check_training_step(training_step) -> None:
    # Two identical float64 models: one stepped by your function, one by the project's SGD.
    from npxception import Xception, XceptionConfig
    from npxception.train import SGD

    audit(training_step, "training_step",
          allowed=("npxception.ops.softmax_cross_entropy", "npxception.ops.softmax_cross_entropy_backward"))
    config = XceptionConfig.tiny(bn_momentum=0.9)
    mine = Xception(config, backend="numpy", seed=3, dtype="float64")
    ref = Xception(config, backend="numpy", seed=3, dtype="float64")
    rng = np.random.default_rng(63)
    optimizer, velocities = SGD("numpy", momentum=0.9, weight_decay=1e-4), {}
    losses, weights = Grade("training_step: loss", 1e-12), Grade("training_step: every weight after 2 steps", 1e-12)
    for step in range(2):
        images = rng.uniform(-1, 1, (6, *config.input_shape))
        labels = rng.integers(0, config.num_classes, 6)
        loss = training_step(mine, images, labels, velocities, 0.05, 0.9, 1e-4)
        logits = ref.forward(images, training=True)
        ref_loss = ops.softmax_cross_entropy(logits, labels)
        ref.backward(ops.softmax_cross_entropy_backward(1.0, logits, labels))
        optimizer.step(ref.trainable(), 0.05)
        losses.add("the loss", f"step {step + 1}", abs(loss - ref_loss))
    ours, theirs = mine.state_dict(), ref.state_dict()
    for key in theirs:
        weights.compare(key, "the tiny preset after 2 steps", ours[key], theirs[key])
    losses.done()
    weights.done()


# --------------------------------------------------------------------------- notebook 7
def check_seed_band(seed_band) -> None:
    audit(seed_band, "seed_band")
    grade = Grade("seed_band (mean, std with ddof=1)", 1e-14)
    for seeds, epochs in [(3, 5), (2, 4), (5, 1)]:
        runs = np.random.default_rng(71).standard_normal((seeds, epochs))
        mean, std = seed_band(runs)
        case = f"{seeds} seeds x {epochs} epochs"
        grade.compare("mean", case, mean, runs.mean(axis=0))
        grade.compare("std", case, std, runs.std(axis=0, ddof=1))
    grade.done()


def _brute_force_p(a, b) -> float:
    # Every relabelling, listed as index tuples: an independent way to the same p-value.
    pooled = list(a) + list(b)
    observed = np.mean(a) - np.mean(b)
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    hits = 0
    for chosen in splits:
        first = [pooled[i] for i in chosen]
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += np.mean(first) - np.mean(rest) >= observed - 1e-12
    return hits / len(splits)


def check_permutation_p_value(permutation_p_value) -> None:
    audit(permutation_p_value, "permutation_p_value")
    rng = np.random.default_rng(72)
    grade = Grade("permutation_p_value", 1e-12)
    cases = [([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]), ([0.0, 1.0, 2.0], [3.0, 4.0, 5.0]),
             ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]), ([2.0, 5.0, 3.0, 9.0], [4.0, 1.0, 0.5])]
    cases += [(list(rng.standard_normal(3)), list(rng.standard_normal(3))) for _ in range(5)]
    for a, b in cases:
        case = f"a = {np.round(a, 2).tolist()}, b = {np.round(b, 2).tolist()}"
        grade.add("p", case, abs(permutation_p_value(a, b) - _brute_force_p(a, b)))
    grade.done()


# --------------------------------------------------------------------------- notebook 8
def check_ring_allreduce(ring_allreduce) -> None:
    from exercises.ranks import RankError, run_ranks

    name = "ring_allreduce"
    audit(ring_allreduce, name)
    rng = np.random.default_rng(81)
    # The error of the sum against the most a sum of `size` terms may round: (size - 1) * eps * sum |x|.
    grade = Grade(f"{name} (error in units of (N - 1) * eps * sum|x|)", 1.0)
    for size, n, dtype in [(1, 5, np.float64), (2, 10, np.float64), (3, 23, np.float32), (4, 4096, np.float32),
                           (5, 3, np.float64), (8, 1000, np.float64)]:
        case = f"{size} ranks x {n} {np.dtype(dtype).name}"
        arrays = [rng.standard_normal(n).astype(dtype) for _ in range(size)]
        try:
            results, messages = run_ranks(ring_allreduce, arrays)
        except RankError as error:
            grade.fail("the run", case, str(error))
            continue
        shapes = {np.shape(r) for r in results}
        if shapes != {(n,)}:
            grade.fail("the sums", case, f"shapes {sorted(shapes)}, expected ({n},)")
            continue
        if any(np.asarray(r).dtype != dtype for r in results):
            grade.fail("the sums", case, f"dtype {np.asarray(results[0]).dtype}, expected the data's "
                                         f"({np.dtype(dtype).name})")
        different = [r for r in range(1, size) if not np.array_equal(results[r], results[0])]
        if different:
            grade.fail("the sums", case, f"rank {different[0]} has other bits than rank 0: every rank must end "
                                         "with the same sum (each chunk summed once, then passed on)")
        exact = np.sum([a.astype(np.float64) for a in arrays], axis=0)
        magnitude = float(np.abs(np.asarray(arrays, np.float64)).sum(axis=0).max())
        scale = max(size - 1, 1) * np.finfo(dtype).eps * max(magnitude, 1e-300)
        grade.add("the sums", case, max(float(np.abs(np.asarray(r, np.float64) - exact).max()) for r in results)
                  / scale)
        far = [m for m in messages if m.dest not in ((m.source + 1) % size, (m.source - 1) % size)]
        if far:
            grade.fail("the messages", case, f"rank {far[0].source} sent to rank {far[0].dest}: a ring talks "
                                             "to its neighbours only")
        sent = [sum(m.source == r for m in messages) for r in range(size)]
        if sent != [2 * (size - 1)] * size:
            grade.fail("the messages", case, f"the ranks sent {sent} messages, expected 2 * (size - 1) = "
                                             f"{2 * (size - 1)} each (N - 1 steps of reduce-scatter, "
                                             "N - 1 of allgather)")
        chunk = -(-n // size)
        big = [m for m in messages if m.elements > chunk]
        if big:
            grade.fail("the messages", case, f"a message of {big[0].elements} elements; one chunk is at most "
                                             f"{chunk} (send one chunk per message, not the whole array)")
        volume = sum(m.elements for m in messages)
        if not far and not big and volume != 2 * (size - 1) * n:
            grade.fail("the messages", case, f"{volume} elements sent in all, expected 2 * (N - 1) * n = "
                                             f"{2 * (size - 1) * n} (each chunk N - 1 times in each phase)")
    grade.done()


def _alpha_beta(algorithm, ranks, nbytes, latency, bandwidth) -> float:
    steps = ranks - 1
    if algorithm == "ring":
        return 2 * steps * latency + 2 * steps / ranks * nbytes / bandwidth
    return steps * latency + steps * nbytes / bandwidth


def check_allreduce_seconds(allreduce_seconds) -> None:
    name = "allreduce_seconds"
    audit(allreduce_seconds, name)
    grade = Grade(f"{name} (relative error)", 1e-12)
    for algorithm, ranks, nbytes, latency, bandwidth in itertools.product(
            ("ring", "allgather"), (1, 2, 3, 8, 1024), (0, 4, 25 * 2**20), (0.0, 5e-6, 1e-3), (1e9, 1.25e10)):
        case = f"{algorithm}, {ranks} ranks, {nbytes} bytes, latency {latency:g} s, bandwidth {bandwidth:g} B/s"
        expected = _alpha_beta(algorithm, ranks, nbytes, latency, bandwidth)
        try:
            mine = float(allreduce_seconds(algorithm, ranks, nbytes, latency, bandwidth))
        except Exception as error:
            grade.fail("the seconds", case, f"raised {type(error).__name__}: {error}")
            continue
        grade.add(f"the {algorithm} seconds", case, abs(mine - expected) / max(expected, 1e-300)
                  if expected else abs(mine))
    grade.done()


def check_combine_statistics(combine_statistics) -> None:
    name = "combine_statistics"
    audit(combine_statistics, name)
    rng = np.random.default_rng(82)
    grade = Grade(f"{name} (relative error)", 1e-10)
    cases = [("1 rank", [6], 0.0), ("2 ranks, equal counts, one distribution", [8, 8], 0.0),
             ("3 ranks, unequal counts", [5, 1, 12], 0.0), ("3 ranks, unequal counts and means", [5, 1, 12], 3.0),
             ("4 ranks, one empty, means far apart", [7, 0, 3, 9], 1e3)]
    for case, counts, spread in cases:
        channels = 3
        rows = [rng.standard_normal((n, channels)) * (1 + r) + spread * r for r, n in enumerate(counts)]
        # An empty rank's mean and variance are what its sums give (0); any value must weigh nothing.
        means = np.array([x.mean(axis=0) if len(x) else np.full(channels, 5.0) for x in rows])
        variances = np.array([x.var(axis=0) if len(x) else np.full(channels, 5.0) for x in rows])
        union = np.concatenate(rows)
        try:
            count, mean, variance = combine_statistics(np.array(counts), means, variances)
        except Exception as error:
            grade.fail("the statistics", case, f"raised {type(error).__name__}: {error}")
            continue
        grade.add("count", case, abs(float(count) - len(union)))
        grade.compare("mean", case, mean, union.mean(axis=0), relative=True)
        grade.compare("variance", case, variance, union.var(axis=0), relative=True)
    grade.done()


# --------------------------------------------------------------------------- notebook 9
def check_roofline_point(roofline_point) -> None:
    # The counts of benchmarks/roofline.py's rules, written out: 2 flops per multiply-add; the
    # input and the weights read once, the output written once.
    audit(roofline_point, "roofline_point")
    grade = Grade("roofline_point (cases that differ)", 0)
    wrong = 0
    for kind, batch, h, w, c_in, c_out, itemsize in [
            ("depthwise", 64, 28, 28, 32, 32, 4), ("pointwise", 64, 28, 28, 32, 32, 4),
            ("pointwise", 64, 7, 7, 64, 182, 4), ("depthwise", 8, 37, 37, 728, 728, 8),
            ("pointwise", 4, 19, 19, 728, 1024, 8), ("depthwise", 1, 5, 3, 7, 7, 2)]:
        pixels = batch * h * w
        if kind == "depthwise":
            flops, moved = 2 * pixels * c_in * 9, itemsize * (2 * pixels * c_in + 9 * c_in)
        else:
            flops, moved = 2 * pixels * c_in * c_out, itemsize * (pixels * (c_in + c_out) + c_in * c_out)
        got = tuple(int(v) for v in roofline_point(kind, batch, h, w, c_in, c_out, itemsize))
        if got != (flops, moved):
            wrong += 1
            grade.failures.append(f"(flops, bytes) is wrong for {kind} {batch}x{h}x{w}x{c_in}"
                                  + (f"->{c_out}" if kind == "pointwise" else "")
                                  + f", {itemsize} bytes per value: you gave {got}, expected {(flops, moved)}")
    grade.worst = wrong
    grade.done()


ONE_PASS_REFUSED = ("np.maximum", "np.minimum", "np.clip", "np.where", "np.fmax", "numpy.maximum", "numpy.where",
                    "numpy.clip")


def check_bn_relu_rows(bn_relu_rows) -> None:
    _parallel_numba(bn_relu_rows, "bn_relu_rows")
    # One pass is the point: a second loop over the rows, or a whole-array clamp after the first
    # loop, reads and writes every value again and passes every comparison of results.
    loops = grading.prange_loops(bn_relu_rows)
    if len(loops) != 1:
        refuse("bn_relu_rows", f"it has {len(loops)} prange loops: the fused kernel makes one pass over the rows, "
                               "normalizing and clamping each value as it writes it")
    clamps = sorted(grading.chains_in(grading.function_tree(bn_relu_rows)) & set(ONE_PASS_REFUSED))
    if clamps:
        refuse("bn_relu_rows", f"it calls {', '.join(clamps)}: a whole-array operation is a second pass over "
                               "the activations; clamp each value inside the loop instead")
    rng = np.random.default_rng(91)
    grade = Grade("bn_relu_rows (equal to ops.relu(ops.batch_norm(...)) exactly)", 0)
    for dims, dtype in [((4, 8, 8, 16), np.float32), ((2, 5, 7, 3), np.float64), ((16, 32, 32, 64), np.float32)]:
        c = dims[3]
        x = rng.standard_normal(dims).astype(dtype)
        gamma, beta = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
        mean, var = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
        expected = ops.relu(ops.batch_norm(x, gamma, beta, mean, var, training=False, epsilon=1e-3)[0])
        scale = gamma * (1.0 / np.sqrt(var + x.dtype.type(1e-3)))   # as the reference computes it
        case = f"x {shape(x)} {np.dtype(dtype).name}"
        y = _threads_agree(grade, "y", case, lambda x=x, mean=mean, scale=scale, beta=beta:
                           bn_relu_rows(x.reshape(-1, x.shape[3]), mean, scale, beta))
        if y.dtype != x.dtype:
            grade.fail("y", case, f"dtype {y.dtype}, expected {x.dtype} (the activations' own dtype)")
            continue
        grade.compare("y", case, y, expected.reshape(-1, c))
    grade.done()


def check_pointwise_chunked(pointwise_chunked) -> None:
    from threadpoolctl import threadpool_limits

    from exercises.blas import matmul_into

    name = "pointwise_chunked"
    _parallel_numba(pointwise_chunked, name)
    chunks = list(grading.function_tree(pointwise_chunked).args.args)[2].arg
    if not any(chunks in names for names in grading.prange_bounds(pointwise_chunked)):
        refuse(name, f"its prange loop does not run over the tasks: loop `for k in prange({chunks})`, one GEMM task "
                     "per iteration")
    if not grading.calls_in_prange(pointwise_chunked, matmul_into):
        refuse(name, "its prange loop calls no matmul_into: each task hands its rows to BLAS "
                     "(matmul_into(x2[first:last], w2, y[first:last]))")
    rng = np.random.default_rng(92)
    grades = {np.float64: Grade(f"{name} (float64)", 1e-12), np.float32: Grade(f"{name} (float32)", 1e-5)}
    with threadpool_limits(limits=1, user_api="blas"):     # one BLAS thread per task, as in the notebook
        for (p, k, c, tasks), dtype in [((1000, 16, 24, 4), np.float64), ((777, 33, 7, 5), np.float64),
                                        ((50, 8, 8, 64), np.float64), ((4096, 64, 96, 8), np.float32)]:
            x2, w2 = rng.standard_normal((p, k)).astype(dtype), rng.standard_normal((k, c)).astype(dtype)
            case = f"x2 {p}x{k}, w2 {k}x{c}, {tasks} tasks"
            grade = grades[dtype]
            y = _threads_agree(grade, "y", case, lambda x2=x2, w2=w2, tasks=tasks: pointwise_chunked(x2, w2, tasks))
            grade.compare("y", case, y, x2.astype(np.float64) @ w2.astype(np.float64), relative=True)
    for grade in grades.values():
        grade.done()


def check_channel_sums(channel_sums) -> None:
    name = "channel_sums"
    _parallel_numba(channel_sums, name)
    counted = sorted(c for c in grading.chains_in(grading.function_tree(channel_sums))
                     if c.split(".")[-1] in ("get_num_threads", "get_thread_id", "_get_thread_id"))
    if counted:
        refuse(name, f"it uses {counted[0]}: the chunks must depend on the shape alone, never on the threads, "
                     "or the sum's order (and its bits) changes with the thread count")
    rng = np.random.default_rng(93)
    grade = Grade(f"{name} (against the float64 sums)", 1e-10)
    for (rows, c, chunks), dtype in [((50000, 8, 16), np.float32), ((37, 5, 64), np.float64),
                                     ((1000, 3, 1), np.float32)]:
        # A mean of 3: the sums grow large, so a float32 accumulator loses digits that float64 keeps.
        x2 = (rng.standard_normal((rows, c)) + 3).astype(dtype)
        case = f"x2 {rows}x{c} {np.dtype(dtype).name}, {chunks} chunks"
        sums = _threads_agree(grade, "the sums", case, lambda x2=x2, chunks=chunks: channel_sums(x2, chunks))
        exact = x2.astype(np.float64)
        expected = np.stack([exact.sum(axis=0), (exact * exact).sum(axis=0)])
        if sums.shape != expected.shape:
            grade.fail("the sums", case, f"shape {sums.shape}, expected {expected.shape} (sums, then sums of squares)")
            continue
        for row, output in enumerate(("sum", "sum of squares")):
            grade.compare(output, case, sums[row], expected[row], relative=True)
    grade.done()
