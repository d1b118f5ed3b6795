"""The same operations written with PyTorch, on NHWC tensors, for parity tests.

PyTorch is NCHW and has no TensorFlow "same" padding, so each function permutes to NCHW, pads
explicitly with the four numbers `npxception.shapes.resolve_padding` gives (the asymmetric case
included), and permutes back. Autograd then gives gradients in our layout and weight shapes.
"""

from __future__ import annotations

import torch.nn.functional as F

from npxception.shapes import as_pair, resolve_padding


def _nchw(x):
    return x.permute(0, 3, 1, 2)


def _nhwc(x):
    return x.permute(0, 2, 3, 1)


def _pad(x_nchw, pads, value=0.0):
    top, bottom, left, right = pads
    return F.pad(x_nchw, (left, right, top, bottom), value=value)


def _pads(x, kernel_hw, stride, padding, dilation):
    return resolve_padding(padding, tuple(x.shape[1:3]), kernel_hw, as_pair(stride, "stride"),
                           as_pair(dilation, "dilation"))


def conv2d(x, w, stride=1, padding="valid", dilation=1):
    pads = _pads(x, tuple(w.shape[:2]), stride, padding, dilation)
    y = F.conv2d(_pad(_nchw(x), pads), w.permute(3, 2, 0, 1), stride=stride, dilation=dilation)
    return _nhwc(y)


def depthwise_conv2d(x, w, stride=1, padding="valid", dilation=1):
    kh, kw, c, m = w.shape
    pads = _pads(x, (kh, kw), stride, padding, dilation)
    weight = w.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)  # out channel c*M + m, like Keras
    y = F.conv2d(_pad(_nchw(x), pads), weight, stride=stride, dilation=dilation, groups=c)
    return _nhwc(y)


def pointwise_conv2d(x, w):
    return conv2d(x, w)


def separable_conv2d(x, dw_kernel, pw_kernel, stride=1, padding="valid", dilation=1):
    return pointwise_conv2d(depthwise_conv2d(x, dw_kernel, stride, padding, dilation), pw_kernel)


def batch_norm(x, gamma, beta, moving_mean, moving_variance, training, epsilon=1e-3):
    y = F.batch_norm(_nchw(x), None if training else moving_mean,
                     None if training else moving_variance, gamma, beta, training=training, eps=epsilon)
    return _nhwc(y)


def max_pool2d(x, pool_size=3, stride=2, padding="same"):
    pool = as_pair(pool_size, "pool_size")
    pads = _pads(x, pool, stride, padding, 1)
    return _nhwc(F.max_pool2d(_pad(_nchw(x), pads, value=float("-inf")), pool, stride))


def global_avg_pool2d(x):
    return x.mean(dim=(1, 2))


def dense(x, w, b=None):
    y = x @ w
    return y if b is None else y + b


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def relu(x):
    return F.relu(x)


def elu(x, alpha=1.0):
    return F.elu(x, alpha=alpha)
