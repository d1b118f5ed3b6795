"""Gradient clipping by global norm: if ||g|| over all gradients exceeds max_norm, scale them all.

||g|| = sqrt(sum over tensors of sum_squares(g)); every g is multiplied by max_norm / ||g||, which
keeps the update's direction and bounds its length. Runs on the backend (`sum_squares`, `scale_`),
so on cuda the gradients stay on the device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def clip_by_global_norm(params: Mapping[str, tuple], max_norm: float, backend) -> float:
    """Scale the grads of `params` (key -> (param, grad)) in place; returns the norm before clipping."""
    norm = math.sqrt(sum(backend.sum_squares(g) for _, g in params.values()))
    if norm > max_norm:
        for _, g in params.values():
            backend.scale_(g, max_norm / norm)
    return norm
