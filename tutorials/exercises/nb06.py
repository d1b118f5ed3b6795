"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb06.py`. Written from tutorials/solutions/nb06.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import numpy as np

from npxception import ops


def sgd_step(p, g, velocity, lr, momentum, weight_decay):
    """One SGD step with momentum and L2 weight decay, in place on p and velocity.

    The decay adds weight_decay * p to the gradient; then velocity = momentum * velocity - lr * g
    and p = p + velocity.
    """
    raise NotImplementedError("your turn")


def ema_step(average, p, updates, decay):
    """Fold p into its moving average, in place, after `updates` earlier updates.

    The decay ramps up as min(decay, (1 + updates) / (10 + updates)), so the average forgets the
    random initial weights quickly; average = d * average + (1 - d) * p.
    """
    raise NotImplementedError("your turn")


def training_step(model, images, labels, velocities, lr, momentum, weight_decay):
    """Forward (training mode), mean softmax cross-entropy, backward, and an SGD step on every
    trainable weight of `model` (a NumPy-backend Xception); returns the loss before the step.

    `velocities` maps "layer/weight" to its velocity array (create zeros the first time); weight
    decay applies only to weights whose name ends in "kernel" (not to biases, gamma or beta).
    """
    raise NotImplementedError("your turn")
