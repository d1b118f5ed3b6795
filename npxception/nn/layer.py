"""The base class every layer derives from, and the input check they share.

A layer owns
  - `params`: trainable weights, backend arrays keyed by Keras's weight name ("kernel", "gamma");
  - `grads`: the same keys, filled by `backward`;
  - `state`: non-trainable weights (BatchNorm's moving statistics), saved but never differentiated.

`forward(x, training)` keeps what `backward` needs in a small named structure (`self._saved`), so a
layer holds the activations of exactly one forward pass. Layers call only their backend's functions
on arrays, so the same layer runs on NumPy, Numba CPU and CUDA device arrays.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..backends import get_backend

Shape = tuple[int, ...]


class Layer:
    """A named, differentiable function of one NHWC (or 2-D) array."""

    def __init__(self, name: str, backend="auto", dtype="float32"):
        self.name = name
        self.backend = get_backend(backend)
        self.dtype = np.dtype(dtype)
        if self.dtype.type not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}
        self._saved = None
        # False when nothing needs d(loss)/d(input): the network's first layer in training, whose
        # input is the images. A layer may then skip that work and return None from backward.
        self.input_grad = True

    # The three methods a concrete layer provides.
    def forward(self, x, training: bool):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape of one example's output (no batch axis) for one example's input shape."""
        return input_shape

    def macs(self, input_shape: Shape) -> int:
        """Multiply-adds of the forward pass for one example."""
        return 0

    # Helpers shared by every layer.
    def leaves(self) -> Iterator[Layer]:
        """The layers that hold weights or compute something (a container yields its children's)."""
        yield self

    def compute_layers(self) -> Iterator[Layer]:
        """The layers whose forward and backward do the work, in order: a container yields its
        children's, a fused layer (nn.BatchNormReLU) itself. What a profiler should time."""
        yield self

    def weights(self) -> dict:
        """Trainable then non-trainable weights, in Keras's order (gamma, beta, moving_mean, ...)."""
        return {**self.params, **self.state}

    def _new_weight(self, array: np.ndarray):
        return self.backend.to_device(np.ascontiguousarray(array, dtype=self.dtype))

    def _saved_for_backward(self):
        if self._saved is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        saved, self._saved = self._saved, None
        return saved

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_input(layer: Layer, x, ndim: int, channels: int | None = None) -> None:
    """Raise a clear error when x has the wrong rank, channel count or dtype for `layer`."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != ndim:
        layout = "NHWC with 4 dims" if ndim == 4 else f"{ndim}-D"
        raise ValueError(f"{layer.name}: input must be {layout}, got shape {shape}")
    if channels is not None and shape[len(shape) - 1] != channels:
        raise ValueError(f"{layer.name}: expects {channels} input channels, got shape {tuple(shape)}")
    if np.dtype(x.dtype) != layer.dtype:
        raise TypeError(f"{layer.name}: input must be {layer.dtype} like the layer, got {x.dtype}")
