"""Notebook 6: one training step by hand: SGD with momentum and weight decay, the moving average
of the weights, and forward, loss, backward and update together."""

import numpy as np

from npxception import ops


def sgd_step(p, g, velocity, lr, momentum, weight_decay):
    """One SGD step with momentum and L2 weight decay, in place on p and velocity.

    The decay adds weight_decay * p to the gradient; then velocity = momentum * velocity - lr * g
    and p = p + velocity.
    """
    # BEGIN SOLUTION
    g = g + weight_decay * p
    velocity *= momentum
    velocity -= lr * g
    p += velocity
    # END SOLUTION


def ema_step(average, p, updates, decay):
    """Fold p into its moving average, in place, after `updates` earlier updates.

    The decay ramps up as min(decay, (1 + updates) / (10 + updates)), so the average forgets the
    random initial weights quickly; average = d * average + (1 - d) * p.
    """
    # BEGIN SOLUTION
    d = min(decay, (1 + updates) / (10 + updates))
    average *= d
    average += (1 - d) * p
    # END SOLUTION


def training_step(model, images, labels, velocities, lr, momentum, weight_decay):
    """Forward (training mode), mean softmax cross-entropy, backward, and an SGD step on every
    trainable weight of `model` (a NumPy-backend Xception); returns the loss before the step.

    `velocities` maps "layer/weight" to its velocity array (create zeros the first time); weight
    decay applies only to weights whose name ends in "kernel" (not to biases, gamma or beta).
    """
    # BEGIN SOLUTION
    logits = model.forward(images, training=True)
    loss = ops.softmax_cross_entropy(logits, labels)
    model.backward(ops.softmax_cross_entropy_backward(1.0, logits, labels))
    for key, (param, grad) in model.trainable().items():
        if key not in velocities:
            velocities[key] = np.zeros_like(param)
        decay = weight_decay if key.endswith("kernel") else 0.0
        sgd_step(param, grad, velocities[key], lr, momentum, decay)
    return loss
    # END SOLUTION
