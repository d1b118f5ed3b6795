"""Finite-difference check of a layer: its input gradient and every weight's gradient.

    from npxception import nn
    from npxception.nn.check import gradcheck_layer
    layer = nn.BatchNorm("bn", 4, dtype="float64")
    gradcheck_layer(layer, x, training=True).assert_ok()

The layer (or container) is treated as a function of its input and of every trainable weight of
every leaf layer; `npxception.gradcheck` compares the backward pass with central differences.
Use a float64 layer: float32 rounding swamps a finite difference.
"""

from __future__ import annotations

import numpy as np

from ..gradcheck import GradcheckReport, gradcheck
from .layer import Layer


def _weight_slots(layer: Layer) -> dict:
    """"leaf/weight" -> (leaf, weight name) for every trainable weight under `layer`."""
    return {f"{leaf.name}/{key}": (leaf, key) for leaf in layer.leaves() for key in leaf.params}


def gradcheck_layer(layer: Layer, x: np.ndarray, *, training: bool = True, seed: int = 0,
                    eps: float = 1e-5, max_samples: int = 32) -> GradcheckReport:
    """Check d(output)/d(x) and d(output)/d(weight) of `layer` at input x (NumPy, layer's dtype).

    The report's names are "x" and "<leaf name>/<weight name>". Non-trainable state (BatchNorm's
    moving statistics) is restored afterwards, so the check leaves the layer as it found it.
    """
    be = layer.backend
    slots = _weight_slots(layer)
    saved_state = {(leaf.name, k): be.to_numpy(v).copy()
                   for leaf in layer.leaves() for k, v in leaf.state.items()}
    inputs = {"x": np.asarray(x, dtype=np.float64)}
    inputs.update({name: be.to_numpy(leaf.params[key]).astype(np.float64)
                   for name, (leaf, key) in slots.items()})

    def load(values: dict):
        for name, (leaf, key) in slots.items():
            leaf.params[key] = be.to_device(np.ascontiguousarray(values[name], dtype=layer.dtype))
        return be.to_device(np.ascontiguousarray(values["x"], dtype=layer.dtype))

    def f(**values) -> np.ndarray:
        y = layer.forward(load(values), training)
        return be.to_numpy(y).astype(np.float64)

    def backward(dy, **values) -> dict:
        layer.forward(load(values), training)
        dx = layer.backward(be.to_device(np.ascontiguousarray(dy, dtype=layer.dtype)))
        grads = {"x": be.to_numpy(dx).astype(np.float64)}
        grads.update({name: be.to_numpy(leaf.grads[key]).astype(np.float64)
                      for name, (leaf, key) in slots.items()})
        return grads

    try:
        return gradcheck(f, inputs, backward, seed=seed, eps=eps, max_samples=max_samples)
    finally:
        load(inputs)
        for leaf in layer.leaves():
            for k in leaf.state:
                leaf.state[k] = be.to_device(saved_state[(leaf.name, k)])
