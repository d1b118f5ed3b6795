"""Checks for the tutorials' "your turn" exercises.

Each `check_*` function takes the student's function, compares it with an independent reference
(usually `npxception.ops`), prints the error against a stated target and raises AssertionError
when the error is above it. The notebooks call them right after each exercise; the tests in this
folder call them on the functions in `exercises/nbNN.py` (`pytest tutorials/exercises`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from npxception import ops


def report(name: str, error: float, target: float) -> None:
    """Print `name`'s error against its target; raise AssertionError when it misses the target.

    Returns nothing, so that a check as the last line of a notebook cell prints only its line.
    """
    ok = bool(error <= target)
    print(f"{name}: error {error:.1e} (target <= {target:.0e}): {'ok' if ok else 'TOO LARGE'}")
    if not ok:
        raise AssertionError(f"{name}: error {error:.3g} is above the target {target:.0e}")


def max_abs(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape}, expected {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


def max_rel(a, b) -> float:
    return max_abs(a, b) / max(float(np.abs(np.asarray(b, dtype=np.float64)).max()), 1e-30)


# --------------------------------------------------------------------------- notebook 1
def check_cost_ratio(cost_ratio) -> None:
    # The closed form M / Cout + M / k^2, against the student's count of weights.
    error = 0.0
    for k, c_in, c_out, m in [(3, 64, 128, 1), (3, 728, 728, 1), (5, 32, 64, 2), (7, 16, 48, 3), (1, 8, 8, 1)]:
        error = max(error, abs(cost_ratio(k, c_in, c_out, m) - (m / c_out + m / k**2)))
    report("cost_ratio", error, 1e-12)


def check_depthwise_strided(depthwise_strided) -> None:
    rng = np.random.default_rng(11)
    error = 0.0
    for shape, k, m, s in [((2, 9, 10, 3), 3, 1, 2), ((1, 11, 8, 2), 3, 2, 3), ((2, 7, 7, 4), 5, 1, 1),
                           ((1, 8, 9, 2), 2, 3, 2)]:
        x, w = rng.standard_normal(shape), rng.standard_normal((k, k, shape[3], m))
        error = max(error, max_abs(depthwise_strided(x, w, s), ops.depthwise_conv2d(x, w, stride=s)))
    report("depthwise_strided", error, 1e-12)


def check_separable_kernel(separable_kernel) -> None:
    rng = np.random.default_rng(12)
    error = 0.0
    for c_in, m, c_out in [(4, 1, 6), (3, 2, 5), (2, 3, 7)]:
        x = rng.standard_normal((2, 6, 7, c_in))
        d, p = rng.standard_normal((3, 3, c_in, m)), rng.standard_normal((1, 1, c_in * m, c_out))
        kernel = separable_kernel(d, p)
        error = max(error, max_abs(ops.conv2d(x, kernel), ops.separable_conv2d(x, d, p)))
        for c in range(c_in):  # rank <= M: the factorization's constraint
            rank = np.linalg.matrix_rank(np.asarray(kernel)[:, :, c, :].reshape(9, c_out))
            if rank > m:
                raise AssertionError(f"separable_kernel: channel {c} has rank {rank} > M = {m}")
    report("separable_kernel", error, 1e-12)


# --------------------------------------------------------------------------- notebook 2
def check_depthwise_backward_strided(depthwise_backward_strided) -> None:
    rng = np.random.default_rng(21)
    error = 0.0
    for shape, k, m, s in [((2, 9, 8, 3), 3, 1, 2), ((1, 10, 11, 2), 3, 2, 3), ((2, 7, 6, 2), 3, 1, 1)]:
        x, w = rng.standard_normal(shape), rng.standard_normal((k, k, shape[3], m))
        dy = rng.standard_normal(ops.depthwise_conv2d(x, w, stride=s).shape)
        mine = depthwise_backward_strided(dy, x, w, s)
        theirs = ops.depthwise_conv2d_backward(dy, x, w, stride=s)
        error = max(error, max_abs(mine[0], theirs[0]), max_abs(mine[1], theirs[1]))
    report("depthwise_backward_strided (dx and dw)", error, 1e-12)


def check_batch_norm_backward(batch_norm_backward_train) -> None:
    rng = np.random.default_rng(22)
    error = 0.0
    for shape in [(4, 3, 3, 2), (2, 5, 4, 3)]:
        c = shape[3]
        x, dy = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
        gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
        mine = batch_norm_backward_train(dy, x, gamma, 1e-3)
        theirs = ops.batch_norm_backward(dy, x, gamma, beta, np.zeros(c), np.ones(c), training=True,
                                         epsilon=1e-3)
        error = max(error, *(max_abs(a, b) for a, b in zip(mine, theirs)))
    report("batch_norm_backward_train (dx, dgamma, dbeta)", error, 1e-12)


def check_softmax_cross_entropy_backward(softmax_cross_entropy_backward) -> None:
    rng = np.random.default_rng(23)
    logits = rng.standard_normal((6, 5)) * 3
    logits[0] += 800.0  # a naive exp overflows here
    labels = rng.integers(0, 5, 6)
    mine = softmax_cross_entropy_backward(logits.copy(), labels)
    error = max_abs(mine, ops.softmax_cross_entropy_backward(1.0, logits, labels))
    report("softmax_cross_entropy_backward", error, 1e-15)


# --------------------------------------------------------------------------- notebook 3
def _with_threads(fn, counts):
    import numba

    available = numba.get_num_threads()
    results = []
    try:
        for t in counts:
            numba.set_num_threads(min(t, available))
            results.append(fn())
    finally:
        numba.set_num_threads(available)
    return results


def check_input_grad_gather(input_grad_gather) -> None:
    rng = np.random.default_rng(31)
    x, w = rng.standard_normal((3, 9, 8, 5)), rng.standard_normal((3, 3, 5, 1))
    dy = rng.standard_normal(ops.depthwise_conv2d(x, w).shape)
    expected = ops.depthwise_conv2d_backward(dy, x, w)[0]
    one, many = _with_threads(lambda: input_grad_gather(dy, w, x.shape[1], x.shape[2]), (1, 64))
    if not np.array_equal(one, many):
        raise AssertionError("input_grad_gather: 1 thread and all threads give different bits")
    report("input_grad_gather", max_abs(many, expected), 1e-12)


def check_filter_grad_by_channel(filter_grad_by_channel) -> None:
    rng = np.random.default_rng(32)
    x, w = rng.standard_normal((4, 12, 11, 6)), rng.standard_normal((3, 3, 6, 1))
    dy = rng.standard_normal(ops.depthwise_conv2d(x, w).shape)
    expected = ops.depthwise_conv2d_backward(dy, x, w)[1][..., 0]
    runs = _with_threads(lambda: filter_grad_by_channel(dy, x, 3, 3), (1, 64, 64, 64))
    if not all(np.array_equal(r, runs[0]) for r in runs):
        raise AssertionError("filter_grad_by_channel: repeated runs give different bits")
    report("filter_grad_by_channel", max_rel(runs[-1], expected), 1e-12)


# --------------------------------------------------------------------------- notebook 4
def check_axpy(axpy) -> None:
    rng = np.random.default_rng(41)
    error = 0.0
    for n, blocks, threads in [(1000, 2, 32), (37, 4, 16), (5, 1, 8)]:  # fewer threads than elements
        x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        error = max(error, max_rel(axpy(2.5, x, y, blocks, threads), 2.5 * x.astype(np.float64) + y))
    report("axpy (grid-stride loop)", error, 1e-6)


def check_filter_grad_cuda(filter_grad_cuda) -> None:
    rng = np.random.default_rng(42)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    w = np.zeros((3, 3, 3, 1))
    dy = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    expected = ops.depthwise_conv2d_backward(dy.astype(np.float64), x.astype(np.float64), w)[1][..., 0]
    report("filter_grad_cuda (float32)", max_rel(filter_grad_cuda(x, dy, 3, 3), expected), 1e-5)


# --------------------------------------------------------------------------- notebook 5
def check_same_padding(same_padding) -> None:
    # A "same" max pool equals a "valid" max pool of the input padded with -inf by your amounts.
    rng = np.random.default_rng(51)
    wrong = 0
    for n in range(3, 12):
        for k in (1, 2, 3):
            for s in (1, 2, 3):
                x = rng.standard_normal((1, n, n, 1))
                before, after = same_padding(n, k, s)
                padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), constant_values=-np.inf)
                ours = ops.max_pool2d(padded, pool_size=k, stride=s, padding="valid")
                theirs = ops.max_pool2d(x, pool_size=k, stride=s, padding="same")
                wrong += ours.shape != theirs.shape or not np.array_equal(ours, theirs)
    report("same_padding (cases that differ from 'same')", wrong, 0)


def check_xception_params(xception_params) -> None:
    from npxception import Xception, XceptionConfig

    wrong = 0
    for m, blocks, classes in [(1.0, 8, 1000), (0.5, 8, 1000), (0.3, 3, 10)]:
        config = XceptionConfig.paper(input_shape=(71, 71, 3), width_multiplier=m, middle_blocks=blocks,
                                      num_classes=classes)
        expected = Xception(config, backend="numpy").num_params()["trainable"]
        got = xception_params(m, blocks, classes)
        print(f"  width x{m}, {blocks} middle blocks, {classes} classes: {got:,} (model: {expected:,})")
        wrong += got != expected
    report("xception_params (configurations that differ)", wrong, 0)


# --------------------------------------------------------------------------- notebook 6
def check_sgd_step(sgd_step) -> None:
    from npxception.train import SGD

    rng = np.random.default_rng(61)
    p, v = rng.standard_normal((4, 3)), np.zeros((4, 3))
    p_ref, reference = p.copy(), SGD("numpy", momentum=0.9, weight_decay=1e-2)
    for _ in range(3):
        g = rng.standard_normal((4, 3))
        sgd_step(p, g, v, 0.1, 0.9, 1e-2)
        reference.step({"layer/kernel": (p_ref, g.copy())}, 0.1)
    report("sgd_step (after 3 steps)", max_abs(p, p_ref), 1e-14)


def check_ema_step(ema_step) -> None:
    from npxception.train import EMA

    rng = np.random.default_rng(62)
    reference, average, error = EMA("numpy", decay=0.99), None, 0.0
    for updates in range(30):
        p = rng.standard_normal((3, 2))
        reference.update({"layer/kernel": (p, p)})
        if average is None:
            average = p.copy()   # the first update copies the weights
        else:
            ema_step(average, p, updates, 0.99)
        error = max(error, max_abs(average, reference.state_dict()["layer/kernel"]))
    report("ema_step (30 updates)", error, 1e-14)


def check_training_step(training_step) -> None:
    # Two identical float64 models: one stepped by your function, one by the project's SGD.
    from npxception import Xception, XceptionConfig
    from npxception.train import SGD

    config = XceptionConfig.tiny(bn_momentum=0.9)
    mine = Xception(config, backend="numpy", seed=3, dtype="float64")
    ref = Xception(config, backend="numpy", seed=3, dtype="float64")
    rng = np.random.default_rng(63)
    optimizer, velocities = SGD("numpy", momentum=0.9, weight_decay=1e-4), {}
    loss_error = 0.0
    for _ in range(2):
        images = rng.uniform(-1, 1, (6, *config.input_shape))
        labels = rng.integers(0, config.num_classes, 6)
        loss = training_step(mine, images, labels, velocities, 0.05, 0.9, 1e-4)
        logits = ref.forward(images, training=True)
        ref_loss = ops.softmax_cross_entropy(logits, labels)
        ref.backward(ops.softmax_cross_entropy_backward(1.0, logits, labels))
        optimizer.step(ref.trainable(), 0.05)
        loss_error = max(loss_error, abs(loss - ref_loss))
    ours, theirs = mine.state_dict(), ref.state_dict()
    weight_error = max(max_abs(ours[k], theirs[k]) for k in theirs)
    report("training_step: loss", loss_error, 1e-12)
    report("training_step: every weight after 2 steps", weight_error, 1e-12)


# --------------------------------------------------------------------------- notebook 7
def check_seed_band(seed_band) -> None:
    runs = np.random.default_rng(71).standard_normal((3, 5))
    mean, std = seed_band(runs)
    error = max(max_abs(mean, runs.mean(axis=0)), max_abs(std, runs.std(axis=0, ddof=1)))
    report("seed_band (mean, std with ddof=1)", error, 1e-14)


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
    rng = np.random.default_rng(72)
    cases = [([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]), ([0.0, 1.0, 2.0], [3.0, 4.0, 5.0]),
             ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]), ([2.0, 5.0, 3.0, 9.0], [4.0, 1.0, 0.5])]
    cases += [(list(rng.standard_normal(3)), list(rng.standard_normal(3))) for _ in range(5)]
    error = max(abs(permutation_p_value(a, b) - _brute_force_p(a, b)) for a, b in cases)
    if not math.isclose(permutation_p_value([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]), 1 / 20):
        raise AssertionError("permutation_p_value: 3 runs each, all of a above all of b, must give 1/20")
    report("permutation_p_value", error, 1e-12)
