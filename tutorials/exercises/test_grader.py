"""The grader refuses the known ways to pass without doing the exercise, names what failed, and
passes every solution (run: pytest tutorials/exercises/test_grader.py).

Each wrong answer is written to a file of its own, as a student would write exercises/nbNN.py,
so that the grader reads its source the way it reads yours.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import textwrap

import pytest

from exercises import checks

HEADER = """
import numpy as np
from numba import cuda, njit, prange

from npxception import ops
"""
_counter = itertools.count()


def answer(tmp_path, source: str, name: str):
    """Function `name` of a module made of HEADER and `source`."""
    module_name = f"wrong_answer_{next(_counter)}"
    path = tmp_path / f"{module_name}.py"
    path.write_text(HEADER + textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


RACY_FILTER_GRAD = """
@njit(parallel=True)
def filter_grad_by_channel(dy, x, kh, kw):
    # Notebook 3's filter_grad_racy: parallel over output rows, every row adds into all of dw.
    n_img, ho, wo, c_in = dy.shape
    dw = np.zeros((kh, kw, c_in), dtype=x.dtype)
    for row in prange(n_img * ho):
        n, i = row // ho, row % ho
        for j in range(wo):
            for p in range(kh):
                for q in range(kw):
                    for c in range(c_in):
                        dw[p, q, c] += x[n, i + p, j + q, c] * dy[n, i, j, c]
    return dw
"""

FILTER_GRAD_BODY = """
    n_img, ho, wo, c_in = dy.shape
    dw = np.zeros((kh, kw, c_in), dtype=x.dtype)
    for c in {loop}(c_in):
        for p in range(kh):
            for q in range(kw):
                acc = 0.0
                for n in range(n_img):
                    for i in range(ho):
                        for j in range(wo):
                            acc += x[n, i + p, j + q, c] * dy[n, i, j, c]
                dw[p, q, c] = acc
    return dw
"""

REDUCTION_HEAD = """
THREADS = 32


@cuda.jit
def filter_grad_kernel(x, dy, dw):
    partial = cuda.shared.array(THREADS, dtype=np.float32)
    tap, c, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
    p, q = tap // dw.shape[1], tap % dw.shape[1]
    n_img, ho, wo = dy.shape[0], dy.shape[1], dy.shape[2]
    acc = np.float32(0.0)
"""
STRIDED_SUM = """
    for flat in range(t, n_img * ho * wo, THREADS):
        n, i, j = flat // (ho * wo), (flat // wo) % ho, flat % wo
        acc += x[n, i + p, j + q, c] * dy[n, i, j, c]
"""
TREE = """
    half = THREADS // 2
    while half > 0:
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()
        half //= 2
    if t == 0:
        dw[p, q, c] = partial[0]
"""

CHANNEL_SUMS_BODY = """
    rows, channels = x2.shape
    partials = np.zeros((chunks, 2, channels), dtype={dtype})
    for k in prange(chunks):
        for r in range({first}, {last}):
            for c in range(channels):
                v = {cast}(x2[r, c])
                partials[k, 0, c] += v
                partials[k, 1, c] += v * v
    total = np.zeros((2, channels))
    for k in range(chunks):
        total += partials[k]
    return total
"""

# (notebook's check, answer's name, source, what the message must say)
WRONG = {
    "nb01 ops wrapper": (
        "check_depthwise_strided", "depthwise_strided", """
        def depthwise_strided(x, w, stride):
            return ops.depthwise_conv2d(x, w, stride=stride)
        """, r"depthwise_strided: it uses ops\.depthwise_conv2d \(from npxception\.ops\)"),
    "nb01 ops wrapper one helper deep": (
        "check_depthwise_strided", "depthwise_strided", """
        import npxception


        def _conv(x, w, s):
            return npxception.ops.depthwise_conv2d(x, w, stride=s)


        def depthwise_strided(x, w, stride):
            return _conv(x, w, stride)
        """, r"depthwise_strided \(through _conv\): it uses npxception\.ops\.depthwise_conv2d "
             r"\(from npxception\.ops\)"),
    "nb01 right only for multiplier 1": (
        "check_depthwise_strided", "depthwise_strided", """
        def depthwise_strided(x, w, stride):
            kh, kw, c_in, mult = w.shape
            ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
            y = np.zeros((x.shape[0], ho, wo, mult, c_in))     # (m, c) instead of (c, m)
            for p in range(kh):
                for q in range(kw):
                    window = x[:, p:p + (ho - 1) * stride + 1:stride, q:q + (wo - 1) * stride + 1:stride, :]
                    y += window[..., None, :] * w[p, q].T
            return y.reshape(x.shape[0], ho, wo, c_in * mult)
        """, r"y is wrong for stride 3, multiplier 2, x 1x11x8x2, 3x3 kernel"),
    "nb02 ops wrapper": (
        "check_depthwise_backward_strided", "depthwise_backward_strided", """
        def depthwise_backward_strided(dy, x, w, stride):
            return ops.depthwise_conv2d_backward(dy, x, w, stride=stride)
        """, r"depthwise_backward_strided: it uses ops\.depthwise_conv2d_backward"),
    "nb02 imported op": (
        "check_batch_norm_backward", "batch_norm_backward_train", """
        from npxception.ops import batch_norm_backward


        def batch_norm_backward_train(dy, x, gamma, epsilon):
            c = x.shape[-1]
            return batch_norm_backward(dy, x, gamma, np.zeros(c), np.zeros(c), np.ones(c), training=True,
                                       epsilon=epsilon)
        """, r"batch_norm_backward_train: it uses batch_norm_backward \(from npxception\.ops\)"),
    "nb02 batch-norm dx missing the variance term": (
        "check_batch_norm_backward", "batch_norm_backward_train", """
        def batch_norm_backward_train(dy, x, gamma, epsilon):
            axes = (0, 1, 2)
            sigma = np.sqrt(x.var(axis=axes) + epsilon)
            x_hat = (x - x.mean(axis=axes)) / sigma
            dx = gamma / sigma * (dy - dy.mean(axis=axes))             # no x_hat * mean(dy * x_hat)
            return dx, (dy * x_hat).sum(axis=axes), dy.sum(axis=axes)
        """, r"dx is wrong for x 4x3x3x2 \(error [^)]*\); dx is wrong for x 2x5x4x3 \(error [^)]*\)$"),
    "nb02 strided backward that drops the stride in dw": (
        "check_depthwise_backward_strided", "depthwise_backward_strided", """
        def depthwise_backward_strided(dy, x, w, stride):
            kh, kw, c_in, mult = w.shape
            n_img, ho, wo, _ = dy.shape
            dy5 = dy.reshape(n_img, ho, wo, c_in, mult)
            dx, dw = np.zeros_like(x), np.empty_like(w)
            for p in range(kh):
                for q in range(kw):
                    rows = slice(p, p + (ho - 1) * stride + 1, stride)
                    cols = slice(q, q + (wo - 1) * stride + 1, stride)
                    dw[p, q] = np.einsum("nijc,nijcm->cm", x[:, p:p + ho, q:q + wo, :], dy5)
                    dx[:, rows, cols, :] += (dy5 * w[p, q]).sum(axis=-1)
            return dx, dw
        """, r"dw is wrong for stride 2, multiplier 1, x 2x9x8x3.*dw is wrong for stride 3"),
    "nb03 the notebook's racy filter gradient": (
        "check_filter_grad_by_channel", "filter_grad_by_channel", RACY_FILTER_GRAD,
        r"filter_grad_by_channel: it races: `dw\[p, q, c\] \+= .*` \(line 18\) updates an element whose index does not "
        r"depend on the prange loop variable row"),
    "nb03 serial njit": (
        "check_filter_grad_by_channel", "filter_grad_by_channel",
        "@njit\ndef filter_grad_by_channel(dy, x, kh, kw):" + FILTER_GRAD_BODY.format(loop="range"),
        r"filter_grad_by_channel: it is compiled without parallel=True"),
    "nb03 parallel=True but no prange": (
        "check_filter_grad_by_channel", "filter_grad_by_channel",
        "@njit(parallel=True)\ndef filter_grad_by_channel(dy, x, kh, kw):" + FILTER_GRAD_BODY.format(loop="range"),
        r"filter_grad_by_channel: it has no prange loop"),
    "nb03 plain NumPy": (
        "check_input_grad_gather", "input_grad_gather", """
        def input_grad_gather(dy, w, height, width):
            kh, kw = w.shape[:2]
            padded = np.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
            dx = np.zeros((dy.shape[0], height, width, dy.shape[3]))
            for p in range(kh):
                for q in range(kw):
                    dx += padded[:, kh - 1 - p:kh - 1 - p + height, kw - 1 - q:kw - 1 - q + width] * w[p, q, :, 0]
            return dx
        """, r"input_grad_gather: it is not a Numba function"),
    "nb04 block-stride loop": (
        "check_axpy", "axpy_kernel", """
        @cuda.jit
        def axpy_kernel(a, x, y, out):
            for i in range(cuda.grid(1), x.size, cuda.blockDim.x):
                out[i] = a * x[i] + y[i]
        """, r"axpy_kernel: no grid-stride loop.*found `range\(cuda\.grid\(1\), \.\.\., cuda\.blockDim\.x\)`"),
    "nb04 thread 0 does all the work": (
        "check_axpy", "axpy_kernel", """
        @cuda.jit
        def axpy_kernel(a, x, y, out):
            if cuda.grid(1) == 0:
                for i in range(x.size):
                    out[i] = a * x[i] + y[i]
        """, r"axpy_kernel: no grid-stride loop.*found `range\(0, \.\.\., 1\)`"),
    "nb04 thread 0 does all the work behind a grid-stride loop": (
        "check_axpy", "axpy_kernel", """
        @cuda.jit
        def axpy_kernel(a, x, y, out):
            for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
                if cuda.grid(1) == 0:
                    for j in range(x.size):
                        out[j] = a * x[j] + y[j]
        """, r"the work split for 1000 elements, 2 blocks x 32 threads: element .* was computed by 2 threads"
             r"|thread 0 of block \(0, 0\) did 1000 of the 1000 elements"),
    "nb04 reduction: thread 0 does all the work": (
        "check_filter_grad_cuda", "filter_grad_kernel",
        REDUCTION_HEAD + """
    if t == 0:
        for flat in range(n_img * ho * wo):
            n, i, j = flat // (ho * wo), (flat // wo) % ho, flat % wo
            acc += x[n, i + p, j + q, c] * dy[n, i, j, c]
    partial[t] = acc
    cuda.syncthreads()
""" + TREE, r"filter_grad_kernel: no thread-strided loop over the pixels"),
    "nb04 reduction with atomicAdd": (
        "check_filter_grad_cuda", "filter_grad_kernel",
        REDUCTION_HEAD + STRIDED_SUM + """
    partial[t] = acc
    cuda.syncthreads()
    cuda.atomic.add(dw, (p, q, c), acc)
""", r"filter_grad_kernel: it uses cuda\.atomic"),
    "nb04 reduction without the first barrier": (
        "check_filter_grad_cuda", "filter_grad_kernel",
        REDUCTION_HEAD + STRIDED_SUM + "    partial[t] = acc\n" + TREE,
        r"filter_grad_kernel: it needs a barrier.*found 1, 1 of them in a loop"),
    "nb09 roofline point that counts the depthwise weights once per pixel": (
        "check_roofline_point", "roofline_point", """
        def roofline_point(kind, batch, height, width, c_in, c_out, itemsize=4):
            pixels = batch * height * width
            if kind == "depthwise":
                return 18 * pixels * c_in, itemsize * (2 * pixels * c_in + 9 * c_in * pixels)
            return 2 * pixels * c_in * c_out, itemsize * (pixels * (c_in + c_out) + c_in * c_out)
        """, r"\(flops, bytes\) is wrong for depthwise 64x28x28x32, 4 bytes per value"),
    "nb09 batch norm, then ReLU in a second loop": (
        "check_bn_relu_rows", "bn_relu_rows", """
        @njit(parallel=True)
        def bn_relu_rows(x2, mean, scale, beta):
            y = np.empty_like(x2)
            for r in prange(x2.shape[0]):
                y[r] = (x2[r] - mean) * scale + beta
            for r in prange(x2.shape[0]):
                y[r] = np.maximum(y[r], 0)
            return y
        """, r"bn_relu_rows: it has 2 prange loops"),
    "nb09 batch norm, then a whole-array ReLU": (
        "check_bn_relu_rows", "bn_relu_rows", """
        @njit(parallel=True)
        def bn_relu_rows(x2, mean, scale, beta):
            y = np.empty_like(x2)
            for r in prange(x2.shape[0]):
                y[r] = (x2[r] - mean) * scale + beta
            return np.maximum(y, 0)
        """, r"bn_relu_rows: it calls np\.maximum"),
    "nb09 batch norm + ReLU with the scale folded into the shift": (
        "check_bn_relu_rows", "bn_relu_rows", """
        @njit(parallel=True)
        def bn_relu_rows(x2, mean, scale, beta):
            shift = beta - mean * scale             # x * scale + shift rounds differently
            y = np.empty_like(x2)
            for r in prange(x2.shape[0]):
                for c in range(x2.shape[1]):
                    v = x2[r, c] * scale[c] + shift[c]
                    y[r, c] = v if v > 0 else 0
            return y
        """, r"bn_relu_rows \(equal to ops\.relu\(ops\.batch_norm\(\.\.\.\)\) exactly\): above the target 0e\+00: "
             r"y is wrong for x 4x8x8x16 float32"),
    "nb09 pointwise as one GEMM": (
        "check_pointwise_chunked", "pointwise_chunked", """
        from exercises.blas import matmul_into


        @njit(parallel=True)
        def pointwise_chunked(x2, w2, chunks):
            y = np.empty((x2.shape[0], w2.shape[1]), dtype=x2.dtype)
            matmul_into(x2, w2, y)
            return y
        """, r"pointwise_chunked: it has no prange loop"),
    "nb09 pointwise one row per task": (
        "check_pointwise_chunked", "pointwise_chunked", """
        from exercises.blas import matmul_into


        @njit(parallel=True)
        def pointwise_chunked(x2, w2, chunks):
            y = np.empty((x2.shape[0], w2.shape[1]), dtype=x2.dtype)
            for r in prange(x2.shape[0]):
                matmul_into(x2[r:r + 1], w2, y[r:r + 1])
            return y
        """, r"pointwise_chunked: its prange loop does not run over the tasks"),
    "nb09 pointwise loops instead of BLAS": (
        "check_pointwise_chunked", "pointwise_chunked", """
        from exercises.blas import matmul_into


        @njit(parallel=True)
        def pointwise_chunked(x2, w2, chunks):
            rows = x2.shape[0]
            y = np.zeros((rows, w2.shape[1]), dtype=x2.dtype)
            for k in prange(chunks):
                for r in range(k * rows // chunks, (k + 1) * rows // chunks):
                    for p in range(x2.shape[1]):
                        y[r] += x2[r, p] * w2[p]
            return y
        """, r"pointwise_chunked: its prange loop calls no matmul_into"),
    "nb09 pointwise through the backend's GEMM tasks": (
        "check_pointwise_chunked", "pointwise_chunked", """
        from npxception.backends.cpu.tuned.gemm import tall_matmul


        def pointwise_chunked(x2, w2, chunks):
            return tall_matmul(x2, w2)
        """, r"pointwise_chunked: it uses tall_matmul \(from npxception\.backends\.cpu\.tuned\.gemm\)"),
    "nb09 racy channel sums": (
        "check_channel_sums", "channel_sums", """
        @njit(parallel=True)
        def channel_sums(x2, chunks):
            total = np.zeros((2, x2.shape[1]))
            for r in prange(x2.shape[0]):
                for c in range(x2.shape[1]):
                    total[0, c] += x2[r, c]
                    total[1, c] += x2[r, c] * x2[r, c]
            return total
        """, r"channel_sums: it races: `total\[0, c\] \+= x2\[r, c\]` \(line \d+\) updates an element whose index "
             r"does not depend on the prange loop variable r"),
    "nb09 channel sums chunked by the thread count": (
        "check_channel_sums", "channel_sums",
        "import numba\n\n\n@njit(parallel=True)\ndef channel_sums(x2, chunks):\n    chunks = numba.get_num_threads()"
        + CHANNEL_SUMS_BODY.format(dtype="np.float64", cast="np.float64", first="k * rows // chunks",
                                   last="(k + 1) * rows // chunks"),
        r"channel_sums: it uses numba\.get_num_threads"),
    "nb09 channel sums in float32": (
        "check_channel_sums", "channel_sums",
        "@njit(parallel=True)\ndef channel_sums(x2, chunks):"
        + CHANNEL_SUMS_BODY.format(dtype="x2.dtype", cast="", first="k * rows // chunks",
                                   last="(k + 1) * rows // chunks"),
        r"channel_sums \(against the float64 sums\): above the target 1e-10: sum is wrong for x2 50000x8 float32"),
    "nb09 channel sums that skip the last rows": (
        "check_channel_sums", "channel_sums",
        "@njit(parallel=True)\ndef channel_sums(x2, chunks):"
        + CHANNEL_SUMS_BODY.format(dtype="np.float64", cast="np.float64", first="k * (rows // chunks)",
                                   last="(k + 1) * (rows // chunks)"),
        r"above the target 1e-10: sum is wrong for x2 37x5 float64, 64 chunks \(error 1\)"),
    "nb06 SGD wrapper": (
        "check_training_step", "training_step", """
        from npxception.train import SGD

        OPTIMIZER = SGD("numpy", momentum=0.9, weight_decay=1e-4)


        def training_step(model, images, labels, velocities, lr, momentum, weight_decay):
            logits = model.forward(images, training=True)
            loss = ops.softmax_cross_entropy(logits, labels)
            model.backward(ops.softmax_cross_entropy_backward(1.0, logits, labels))
            OPTIMIZER.step(model.trainable(), lr)
            return loss
        """, r"training_step: it uses OPTIMIZER\.step \(from npxception\.train\.optimizers\)"),
    "nb06 SGD inside sgd_step": (
        "check_sgd_step", "sgd_step", """
        def sgd_step(p, g, velocity, lr, momentum, weight_decay):
            from npxception.train import SGD
            SGD("numpy", momentum=momentum, weight_decay=weight_decay).step({"w/kernel": (p, g)}, lr)
        """, r"sgd_step: it imports npxception\.train\.SGD"),
    "nb08 ring passing whole arrays": (
        "check_ring_allreduce", "ring_allreduce", """
        def ring_allreduce(data, rank, size, send, recv):
            # Each rank's whole array travels around the ring: right sum, N - 1 full-size messages.
            total, passing = data.copy(), data.copy()
            for _ in range(size - 1):
                send((rank + 1) % size, passing)
                passing = recv((rank - 1) % size)
                total += passing
            return total
        """, r"the ranks sent \[2, 2, 2\] messages, expected 2 \* \(size - 1\) = 4 each.*"
             r"a message of 23 elements; one chunk is at most 8"),
    "nb08 ring without its allgather": (
        "check_ring_allreduce", "ring_allreduce", """
        def ring_allreduce(data, rank, size, send, recv):
            n, total = len(data), data.copy()
            bounds = [(c * n // size, (c + 1) * n // size) for c in range(size)]
            for step in range(size - 1):
                a, b = bounds[(rank - step) % size]
                send((rank + 1) % size, total[a:b])
                a, b = bounds[(rank - step - 1) % size]
                total[a:b] += recv((rank - 1) % size)
            return total
        """, r"the sums for 2 ranks x 10 float64: rank 1 has other bits than rank 0"),
    "nb08 sum at rank 0": (
        "check_ring_allreduce", "ring_allreduce", """
        def ring_allreduce(data, rank, size, send, recv):
            if rank == 0:
                total = data.copy()
                for r in range(1, size):
                    total += recv(r)
                for r in range(1, size):
                    send(r, total)
                return total
            send(0, data)
            return recv(0)
        """, r"the messages for 4 ranks x 4096 float32: rank 2 sent to rank 0: a ring talks to its neighbours only"),
    "nb08 ring from npxception.distributed": (
        "check_combine_statistics", "combine_statistics", """
        from npxception.distributed.sync_bn import combine_statistics as combined


        def combine_statistics(counts, means, variances):
            return combined(counts, means, variances)
        """, r"combine_statistics: it uses combined \(from npxception\.distributed\.sync_bn\)"),
    "nb08 latency term scaled like the bandwidth term": (
        "check_allreduce_seconds", "allreduce_seconds", """
        def allreduce_seconds(algorithm, ranks, nbytes, latency, bandwidth):
            if algorithm == "ring":
                return 2 * (ranks - 1) / ranks * (latency + nbytes / bandwidth)
            return (ranks - 1) * (latency + nbytes / bandwidth)
        """, r"the ring seconds is wrong for ring, 2 ranks, 0 bytes, latency 5e-06 s"),
    "nb08 mean of the variances": (
        "check_combine_statistics", "combine_statistics", """
        def combine_statistics(counts, means, variances):
            w = np.asarray(counts, dtype=np.float64)[:, None] / np.sum(counts)
            return np.sum(counts), (w * means).sum(axis=0), (w * variances).sum(axis=0)
        """, r"variance is wrong for 3 ranks, unequal counts and means"),
    "nb08 unweighted": (
        "check_combine_statistics", "combine_statistics", """
        def combine_statistics(counts, means, variances):
            mean = means.mean(axis=0)
            return np.sum(counts), mean, (variances + (means - mean) ** 2).mean(axis=0)
        """, r"mean is wrong for 3 ranks, unequal counts\b.*variance is wrong for 3 ranks, unequal counts\b"),
}
STAR_IMPORTS = {"nb01": ("check_separable_kernel", "separable_kernel"),
                "nb02": ("check_softmax_cross_entropy_backward", "softmax_cross_entropy_backward"),
                "nb03": ("check_input_grad_gather", "input_grad_gather"),
                "nb06": ("check_ema_step", "ema_step"),
                "nb08": ("check_combine_statistics", "combine_statistics"),
                "nb09": ("check_channel_sums", "channel_sums")}


@pytest.mark.parametrize("label", WRONG, ids=list(WRONG))
def test_wrong_answer_fails_and_says_why(label, tmp_path):
    check, name, source, message = WRONG[label]
    with pytest.raises(AssertionError, match=message):
        getattr(checks, check)(answer(tmp_path, source, name))


@pytest.mark.parametrize("notebook", STAR_IMPORTS, ids=list(STAR_IMPORTS))
def test_importing_the_solutions_fails(notebook, tmp_path, monkeypatch):
    # Even while NPXCEPTION_SOLUTIONS=1 grades the solutions, your own module may not import them.
    monkeypatch.delenv("NPXCEPTION_SOLUTIONS", raising=False)
    check, name = STAR_IMPORTS[notebook]
    fn = answer(tmp_path, f"from solutions.{notebook} import *  # noqa: F403\n", name)
    with pytest.raises(AssertionError, match=rf"{name}: it is solutions\.{notebook}\.{name}, not your own code"):
        getattr(checks, check)(fn)


SOLVED = [("nb01", "check_cost_ratio", "cost_ratio"), ("nb01", "check_depthwise_strided", "depthwise_strided"),
          ("nb01", "check_separable_kernel", "separable_kernel"),
          ("nb02", "check_depthwise_backward_strided", "depthwise_backward_strided"),
          ("nb02", "check_batch_norm_backward", "batch_norm_backward_train"),
          ("nb02", "check_softmax_cross_entropy_backward", "softmax_cross_entropy_backward"),
          ("nb03", "check_input_grad_gather", "input_grad_gather"),
          ("nb03", "check_filter_grad_by_channel", "filter_grad_by_channel"),
          ("nb04", "check_axpy", "axpy_kernel"), ("nb04", "check_filter_grad_cuda", "filter_grad_kernel"),
          ("nb05", "check_same_padding", "same_padding"), ("nb05", "check_xception_params", "xception_params"),
          ("nb06", "check_sgd_step", "sgd_step"), ("nb06", "check_ema_step", "ema_step"),
          ("nb06", "check_training_step", "training_step"),
          ("nb07", "check_seed_band", "seed_band"), ("nb07", "check_permutation_p_value", "permutation_p_value"),
          ("nb08", "check_ring_allreduce", "ring_allreduce"), ("nb08", "check_allreduce_seconds", "allreduce_seconds"),
          ("nb08", "check_combine_statistics", "combine_statistics"),
          ("nb09", "check_roofline_point", "roofline_point"), ("nb09", "check_bn_relu_rows", "bn_relu_rows"),
          ("nb09", "check_pointwise_chunked", "pointwise_chunked"), ("nb09", "check_channel_sums", "channel_sums")]


@pytest.mark.parametrize("notebook, check, name", SOLVED, ids=[s[2] for s in SOLVED])
def test_every_solution_passes(notebook, check, name, monkeypatch):
    monkeypatch.setenv("NPXCEPTION_SOLUTIONS", "1")   # grading the solutions: they may live there
    getattr(checks, check)(getattr(importlib.import_module(f"solutions.{notebook}"), name))
