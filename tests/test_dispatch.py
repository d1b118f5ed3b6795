"""The cpu backend's dispatch table: every tuned kernel against its plain twin, and the plain switch.

For every row of `dispatch.TABLE`, the cases below that the row's condition picks run through the
tuned kernel and through the plain kernel of the same pass: bitwise equal where the row claims it,
else to rounding. Each row must be picked by at least one case, so a row no shape reaches fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npxception.backends import cpu, fused
from npxception.backends.cpu import dispatch
from npxception.shapes import resolve_padding
from npxception.testing.compare import assert_close

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [np.float64, np.float32]

# (x shape, w shape, stride, padding, dilation) for the convolution passes.
DEPTHWISE = [((2, 9, 11, 8), (3, 3, 8, 1), 1, "same", 1),        # Xception's layer: unrolled 3x3 rows
             ((1, 9, 8, 6), (3, 3, 6, 2), 2, "same", 1),         # stride 2, depth multiplier 2
             ((2, 7, 9, 5), (2, 3, 5, 1), 1, "valid", (2, 1)),    # other kernel size, dilation
             ((1, 5, 6, 136), (3, 3, 136, 1), 1, "same", 1)]     # wide channels: pixel pairs
CONV = [((2, 9, 11, 3), (3, 3, 3, 8), 1, "same", 1),              # narrow stem: direct kernels
        ((2, 10, 10, 20), (3, 3, 20, 40), 1, "same", 1),          # wide: blocked im2col, flipped dx
        ((2, 11, 10, 12), (3, 3, 12, 16), 2, "valid", 1),         # stride 2: dx through col2im
        ((3, 7, 7, 16), (1, 1, 16, 8), 2, "same", 1),             # a shortcut conv
        ((2, 6, 5, 7), (1, 1, 7, 9), 1, "valid", 1)]              # 1x1, stride 1: cols is x itself
POINTWISE = [((2, 5, 7, 6), 9), ((1, 130, 130, 3), 4)]            # short, and tall (row chunks)


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _conv_calls(op_family, dtype):
    """(pass, args) for the forward, input-gradient and filter-gradient passes of each case."""
    rng = np.random.default_rng(7)
    cases = DEPTHWISE if op_family == "depthwise" else CONV
    forward = cpu.depthwise_conv2d if op_family == "depthwise" else cpu.conv2d
    for x_shape, w_shape, stride, padding, dilation in cases:
        st, dil = (stride, stride) if isinstance(stride, int) else stride, (dilation,) * 2 if isinstance(
            dilation, int) else dilation
        pads = resolve_padding(padding, x_shape[1:3], w_shape[:2], st, dil)
        x, w = _normal(rng, x_shape, dtype), _normal(rng, w_shape, dtype)
        dy = _normal(rng, forward(x, w, st, pads, dil).shape, dtype)
        yield f"{op_family}_conv2d" if op_family == "depthwise" else "conv2d", (x, w, st, pads, dil)
        yield f"{op_family}_input_grad", (dy, w, x.shape, st, pads, dil)
        yield f"{op_family}_filter_grad", (dy, x, w, st, pads, dil)


def _calls(dtype):
    yield from _conv_calls("depthwise", dtype)
    yield from _conv_calls("conv2d", dtype)
    rng = np.random.default_rng(8)
    for x_shape, cout in POINTWISE:
        x, w = _normal(rng, x_shape, dtype), _normal(rng, (1, 1, x_shape[3], cout), dtype)
        dy = _normal(rng, (*x_shape[:3], cout), dtype)
        yield "pointwise_conv2d", (x, w)
        yield "pointwise_input_grad", (dy, w, x.shape)
        yield "pointwise_filter_grad", (dy, x, w)
    x, w, b, dy = (_normal(rng, s, dtype) for s in ((5, 12), (12, 10), (10,), (5, 10)))
    yield "dense", (x, w, b)
    yield "dense_backward", (dy, x, w, True)
    x = _normal(rng, (2, 5, 6, 7), dtype)
    gamma, beta = _normal(rng, (7,), dtype), _normal(rng, (7,), dtype)
    y, mean, var = cpu.batch_norm_relu_train(x, gamma, beta, 1e-3)
    yield "batch_norm_relu_train", (x, gamma, beta, 1e-3)
    yield "batch_norm_relu_infer", (x, gamma, beta, mean, var, 1e-3)
    for training in (True, False):
        yield "batch_norm_relu_backward", (_normal(rng, x.shape, dtype), x, y, gamma, mean, var, 1e-3, training)


def _plain(op):
    if op in dispatch.PLAIN:
        return dispatch.PLAIN[op]
    return lambda *args: fused.FUSED_DEFINITIONS[op](cpu, *args)  # a fused op's plain form: its definition


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("row", dispatch.TABLE, ids=[f"{r.op}:{r.kernel.__module__.split('.')[-1]}.{r.kernel.__name__}"
                                                      for r in dispatch.TABLE])
def test_every_tuned_kernel_matches_its_plain_twin(row, dtype):
    picked = [(op, args) for op, args in _calls(dtype) if op == row.op and dispatch.chosen(op, *args) is row]
    assert picked, f"no case of the catalogue reaches {row.op} -> {row.kernel.__name__} ({row.condition})"
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for op, args in picked:
        tuned, plain = _outputs(row.kernel(*args)), _outputs(_plain(op)(*args))
        assert len(tuned) == len(plain)
        for k, (a, b) in enumerate(zip(tuned, plain)):
            name = f"{op} output {k} for shapes {[getattr(v, 'shape', v) for v in args]}"
            assert a.dtype == b.dtype, name
            if row.bitwise:
                assert np.array_equal(a, b), f"{name}: not the plain kernel's bits"
            else:
                assert_close(a, b, name=name, rtol=rtol)


def test_every_row_names_a_benchmark_that_exists():
    for row in dispatch.TABLE:
        assert row.op in dispatch.PLAIN or row.op in dispatch.FUSED_BN_RELU, row.op
        script = row.benchmark.split(":")[0]
        assert (ROOT / script).is_file(), f"{row.op}: {script} does not exist"
        assert row.condition and row.kernel.__module__.startswith("npxception.backends.cpu.tuned."), row


def test_the_plain_switch_runs_the_network_on_the_plain_kernels():
    """NPXCEPTION_PLAIN=1: every pass is the plain kernel, the fused ops their definitions, and a
    `tiny` training step gives the tuned network's loss and gradients to rounding."""
    code = (
        "import numpy as np, json, sys\n"
        "from npxception.backends import cpu\n"
        "from npxception.backends.cpu import dispatch\n"
        "from npxception.models import Xception, XceptionConfig\n"
        "assert all(getattr(cpu, op) is fn for op, fn in dispatch.PLAIN.items()) == (sys.argv[1] == '1')\n"
        "m = Xception(XceptionConfig.tiny(dropout=0.0), backend='cpu', seed=1, dtype='float64')\n"
        "x = np.random.default_rng(2).standard_normal((3, 16, 16, 3))\n"
        "labels = np.array([0, 1, 2])\n"
        "logits = m.forward(x, True)\n"
        "loss = float(cpu.softmax_cross_entropy(logits, labels, 0.0))\n"
        "dx = m.backward(cpu.softmax_cross_entropy_backward(1.0, logits, labels, 0.0))\n"
        "g = m.gradients()\n"
        "np.savez(sys.argv[2], loss=loss, logits=logits, dx=dx, **{k: np.asarray(v) for k, v in g.items()})\n"
    )
    out = {}
    for plain in ("0", "1"):
        path = ROOT / f".pytest-plain-{plain}-{os.getpid()}.npz"
        env = {**os.environ, "NPXCEPTION_PLAIN": plain, "NUMBA_NUM_THREADS": "2"}
        result = subprocess.run([sys.executable, "-c", code, plain, str(path)], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(path) as data:
            out[plain] = dict(data)
        path.unlink()
    assert out["0"].keys() == out["1"].keys()
    for key in out["0"]:
        # atol: a batch norm whose output feeds another batch norm has a beta gradient that is 0
        # up to rounding (~1e-17), where a relative error means nothing.
        np.testing.assert_allclose(out["1"][key], out["0"][key], rtol=1e-9, atol=1e-13, err_msg=key)
