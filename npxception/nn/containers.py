"""Containers: Sequential (a chain of layers) and Residual (a main path plus a shortcut).

Residual computes y = main(x) + shortcut(x), where the shortcut is a layer (Xception's strided 1x1
conv + BN) or None for the identity. Both paths read the same x, so the gradient reaching x is the
sum of what comes back down each: dx = main.backward(dy) + shortcut.backward(dy).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .layer import Layer, Shape


class Sequential(Layer):
    def __init__(self, name: str, layers: Sequence[Layer], *, backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        self.layers = list(layers)

    def forward(self, x, training: bool):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def output_shape(self, input_shape: Shape) -> Shape:
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def macs(self, input_shape: Shape) -> int:
        total = 0
        for layer in self.layers:
            total += layer.macs(input_shape)
            input_shape = layer.output_shape(input_shape)
        return total

    def leaves(self) -> Iterator[Layer]:
        for layer in self.layers:
            yield from layer.leaves()

    def compute_layers(self) -> Iterator[Layer]:
        for layer in self.layers:
            yield from layer.compute_layers()


class Residual(Layer):
    def __init__(self, name: str, main: Layer, shortcut: Layer | None = None, *, backend="auto",
                 dtype="float32"):
        super().__init__(name, backend, dtype)
        self.main, self.shortcut = main, shortcut

    def forward(self, x, training: bool):
        y = self.main.forward(x, training)
        skip = x if self.shortcut is None else self.shortcut.forward(x, training)
        if tuple(y.shape) != tuple(skip.shape):
            raise ValueError(f"{self.name}: main path gives {tuple(y.shape)} but the shortcut "
                             f"gives {tuple(skip.shape)}; they must match to be added")
        return self.backend.add(y, skip)

    def backward(self, dy):
        d_main, d_skip = self.backend.add_backward(dy)
        dx = self.main.backward(d_main)
        if self.shortcut is not None:
            d_skip = self.shortcut.backward(d_skip)
        return self.backend.add(dx, d_skip)

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.main.output_shape(input_shape)

    def macs(self, input_shape: Shape) -> int:
        skip = 0 if self.shortcut is None else self.shortcut.macs(input_shape)
        return self.main.macs(input_shape) + skip

    def leaves(self) -> Iterator[Layer]:
        yield from self.main.leaves()
        if self.shortcut is not None:
            yield from self.shortcut.leaves()

    def compute_layers(self) -> Iterator[Layer]:
        yield from self.main.compute_layers()
        if self.shortcut is not None:
            yield from self.shortcut.compute_layers()
