"""PyTorch's fastest way to do what one backend call does, on the same GPU, for the timings.

`torch_call(fn, args, device)` takes a case's arguments (NumPy, the contract's resolved form) and
returns a callable running the PyTorch equivalent (cuDNN convolutions and batch norm, cuBLAS
matrix products, PyTorch's own optimizers) on tensors already on the device, or None where PyTorch
has nothing comparable. NHWC arrays become channels_last NCHW tensors (the same memory layout), so
no layout conversion is timed. PyTorch pads symmetrically only: a TensorFlow "same" pad (0, 1)
is timed as (1, 1) when that gives the same output size (same work), and `approximate` says so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class TorchCall:
    def __init__(self, call: Callable, approximate: bool = False):
        self.call, self.approximate = call, approximate


def _symmetric(pads) -> tuple[tuple[int, int], bool]:
    top, bottom, left, right = pads
    return (max(top, bottom), max(left, right)), (top != bottom or left != right)


def torch_call(fn: str, args: tuple, device: str) -> TorchCall | None:
    import torch
    import torch.nn.functional as F

    aten = torch.ops.aten

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    def nchw(a):   # NHWC memory seen as channels_last NCHW
        return t(a).permute(0, 3, 1, 2)

    def weight(w, depthwise):
        kh, kw, c, m = w.shape
        if depthwise:
            return t(w).permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw).contiguous()
        return t(w).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)

    if fn in ("conv2d", "depthwise_conv2d", "conv2d_backward", "depthwise_conv2d_backward"):
        backward = fn.endswith("_backward")
        dy, (x, w, stride, pads, dilation) = (args[0], args[1:]) if backward else (None, args)
        depthwise = fn.startswith("depthwise")
        groups = x.shape[3] if depthwise else 1
        pad, approx = _symmetric(pads)
        xt, wt = nchw(x), weight(w, depthwise)
        if not backward:
            return TorchCall(lambda: F.conv2d(xt, wt, None, stride, pad, dilation, groups), approx)
        dyt = nchw(dy)
        if tuple(F.conv2d(xt, wt, None, stride, pad, dilation, groups).shape[2:]) != tuple(dy.shape[1:3]):
            return None
        return TorchCall(lambda: aten.convolution_backward(dyt, xt, wt, None, list(stride), list(pad),
                                                           list(dilation), False, [0, 0], groups,
                                                           [True, True, False]), approx)
    if fn == "pointwise_conv2d":
        x, w = args
        xm, wm = t(x).reshape(-1, x.shape[3]), t(w).reshape(w.shape[2], w.shape[3])
        return TorchCall(lambda: xm @ wm)
    if fn == "pointwise_conv2d_backward":
        dy, x, w = args
        dym, xm = t(dy).reshape(-1, dy.shape[3]), t(x).reshape(-1, x.shape[3])
        wm = t(w).reshape(w.shape[2], w.shape[3])
        return TorchCall(lambda: (dym @ wm.T, xm.T @ dym))
    if fn == "batch_norm_train":
        x, gamma, beta, eps = args
        xt, gt, bt = nchw(x), t(gamma), t(beta)
        return TorchCall(lambda: aten.native_batch_norm(xt, gt, bt, None, None, True, 0.0, eps))
    if fn == "batch_norm_infer":
        x, gamma, beta, mean, var, eps = args
        xt, gt, bt, mt, vt = nchw(x), t(gamma), t(beta), t(mean), t(var)
        return TorchCall(lambda: F.batch_norm(xt, mt, vt, gt, bt, False, 0.0, eps))
    if fn == "batch_norm_backward":
        dy, x, gamma, mean, var, eps, training = args
        dyt, xt, gt, mt = nchw(dy), nchw(x), t(gamma), t(mean)
        invstd = torch.rsqrt(t(var) + eps)
        return TorchCall(lambda: aten.native_batch_norm_backward(dyt, xt, gt, None, None, mt, invstd, training,
                                                                 eps, [True, True, True]))
    if fn == "moving_average_update":
        moving, batch, momentum = args
        mt, bt = t(moving), t(batch)
        return TorchCall(lambda: torch.lerp(bt, mt, momentum))
    if fn in ("relu", "elu"):
        xt = t(args[0])
        return TorchCall((lambda: torch.relu(xt)) if fn == "relu" else (lambda: F.elu(xt, args[1])))
    if fn == "relu_backward":
        dyt, xt = t(args[0]), t(args[1])
        return TorchCall(lambda: aten.threshold_backward(dyt, xt, 0))
    if fn == "elu_backward":
        dyt, xt, alpha = t(args[0]), t(args[1]), args[2]
        return TorchCall(lambda: aten.elu_backward(dyt, alpha, 1, 1, False, xt))
    if fn == "add":
        at, bt = t(args[0]), t(args[1])
        return TorchCall(lambda: at + bt)
    if fn in ("max_pool2d", "max_pool2d_backward"):
        backward = fn.endswith("_backward")
        dy, (x, pool, stride, pads) = (args[0], args[1:]) if backward else (None, args)
        pad, approx = _symmetric(pads)
        if pad[0] > pool[0] // 2 or pad[1] > pool[1] // 2:
            return None
        xt = nchw(x)
        y, idx = F.max_pool2d(xt, pool, stride, pad, return_indices=True)
        ours_hw = ((x.shape[1] + pads[0] + pads[1] - pool[0]) // stride[0] + 1,
                   (x.shape[2] + pads[2] + pads[3] - pool[1]) // stride[1] + 1)
        if tuple(y.shape[2:]) != ours_hw:
            return None
        if not backward:
            return TorchCall(lambda: F.max_pool2d(xt, pool, stride, pad), approx)
        dyt = nchw(dy)
        return TorchCall(lambda: aten.max_pool2d_with_indices_backward(dyt, xt, list(pool), list(stride),
                                                                       list(pad), [1, 1], False, idx), approx)
    if fn == "global_avg_pool2d":
        xt = t(args[0])
        return TorchCall(lambda: xt.mean(dim=(1, 2)))
    if fn == "global_avg_pool2d_backward":
        dyt, shape = t(args[0]), args[1].shape
        return TorchCall(lambda: (dyt / (shape[1] * shape[2]))[:, None, None, :].expand(shape).contiguous())
    if fn == "dense":
        xt, wt, bt = t(args[0]), t(args[1]), t(args[2])
        return TorchCall(lambda: torch.addmm(bt, xt, wt))
    if fn == "dense_backward":
        dyt, xt, wt = t(args[0]), t(args[1]), t(args[2])
        return TorchCall(lambda: (dyt @ wt.T, xt.T @ dyt, dyt.sum(0)))
    if fn == "dropout":
        xt, rate = t(args[0]), args[1]
        return TorchCall(lambda: F.dropout(xt, rate, True))
    if fn == "dropout_backward":
        dyt, rate = t(args[0]), args[1]
        mask = (torch.rand_like(dyt) >= rate).to(dyt.dtype) / (1 - rate)
        return TorchCall(lambda: dyt * mask)
    if fn == "softmax_cross_entropy":
        zt, yt, smoothing = t(args[0]), t(args[1]), args[2]
        return TorchCall(lambda: F.cross_entropy(zt, yt, label_smoothing=smoothing))
    if fn == "softmax_cross_entropy_backward":
        dloss, zt, yt, smoothing = args[0], t(args[1]), t(args[2]), args[3]
        k = zt.shape[1]
        target = F.one_hot(yt, k).to(zt.dtype) * (1 - smoothing) + smoothing / k
        return TorchCall(lambda: (torch.softmax(zt, 1) - target) * (dloss / zt.shape[0]))
    return _optimizer_call(fn, args, t)


def _optimizer_call(fn: str, args: tuple, t) -> TorchCall | None:
    """PyTorch's optimizers (single-tensor path) on one parameter with its gradient."""
    import torch

    if fn in ("sgd_update", "rmsprop_update", "adam_update"):
        p = torch.nn.Parameter(t(args[0]))
        p.grad = t(args[1])
        if fn == "sgd_update":
            _, _, _, lr, momentum, nesterov, wd = args
            opt = torch.optim.SGD([p], lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd,
                                  foreach=False)
        elif fn == "rmsprop_update":
            lr, rho, momentum, eps, wd = args[4:]
            opt = torch.optim.RMSprop([p], lr=lr, alpha=rho, eps=eps, momentum=momentum, weight_decay=wd,
                                      foreach=False)
        else:
            lr, b1, b2, eps, wd, decoupled = args[4:10]
            kind = torch.optim.AdamW if decoupled else torch.optim.Adam
            opt = kind([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
        return TorchCall(opt.step)
    if fn == "ema_update":
        avg, p, decay = t(args[0]), t(args[1]), args[2]
        return TorchCall(lambda: avg.lerp_(p, 1 - decay))
    if fn == "scale_":
        at, s = t(args[0]), args[1]
        return TorchCall(lambda: at.mul_(s))
    if fn == "sum_squares":
        at = t(args[0])
        return TorchCall(lambda: torch.dot(at, at).item())
    return None
