"""Layers: objects with `params` / `grads` dicts, `forward(x, training)` and `backward(dy) -> dx`.

Each layer is built with a backend ("numpy", "cpu", "cuda" or a backend module) and calls only that
backend's functions on arrays (directly, or through the compositions in `npxception.compose` that
`npxception.ops` shares), so the same layer trains on CPU or GPU. Layers check their inputs
(`layer.check_input`, the window geometry in `npxception.shapes`); backends check nothing. Weight names and shapes are
Keras's, so `"block4_sepconv2/pointwise_kernel"` means the same thing here, in Keras and in the
published weight files.
"""

from .activations import ELU, ReLU
from .batch_norm import BatchNorm
from .containers import Residual, Sequential
from .conv import Conv2D
from .dense import Dense
from .depthwise import DepthwiseConv2D
from .dropout import Dropout
from .fused import BatchNormReLU, fuse_batch_norm_relu
from .layer import Layer
from .pointwise import PointwiseConv2D
from .pooling import GlobalAvgPool2D, MaxPool2D
from .separable import SeparableConv2D

__all__ = [
    "BatchNorm", "BatchNormReLU", "Conv2D", "Dense", "DepthwiseConv2D", "Dropout", "ELU", "GlobalAvgPool2D", "Layer",
    "MaxPool2D", "PointwiseConv2D", "ReLU", "Residual", "SeparableConv2D", "Sequential",
    "fuse_batch_norm_relu",
]
