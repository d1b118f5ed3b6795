"""The definitions of the contract's fused ops (`contract.FusedOps`), as compositions of its functions.

A backend's own fused kernel must give what these give (tests/test_architecture.py checks the cpu
backend's); a backend without one binds these (`fused_ops`), so every backend has every op of the
contract and no caller ever asks which ones a backend has. Each takes the backend module first.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable

from ..shapes import Padding4, Pair


def conv2d_filter_grad(be, dy, x, w, stride: Pair, padding: Padding4, dilation: Pair):
    return be.conv2d_backward(dy, x, w, stride, padding, dilation)[1]


def batch_norm_relu_train(be, x, gamma, beta, epsilon: float):
    y, mean, var = be.batch_norm_train(x, gamma, beta, epsilon)
    return be.relu(y), mean, var


def batch_norm_relu_infer(be, x, gamma, beta, mean, var, epsilon: float):
    return be.relu(be.batch_norm_infer(x, gamma, beta, mean, var, epsilon))


def batch_norm_relu_backward(be, dy, x, y, gamma, mean, var, epsilon: float, training: bool):
    # y = relu(z) > 0 exactly where z > 0, so y gives the ReLU's mask.
    return be.batch_norm_backward(be.relu_backward(dy, y), x, gamma, mean, var, epsilon, training)


def max_pool2d_with_taps(be, x, pool_size: Pair, stride: Pair, padding: Padding4):
    # Without a taps kernel the "taps" are x itself: the backward pass finds the winners again.
    return be.max_pool2d(x, pool_size, stride, padding), x


def max_pool2d_backward_taps(be, dy, taps, x_shape, pool_size: Pair, stride: Pair, padding: Padding4):
    return be.max_pool2d_backward(dy, taps, pool_size, stride, padding)


FUSED_DEFINITIONS = {f.__name__: f for f in (conv2d_filter_grad, max_pool2d_with_taps, max_pool2d_backward_taps,
                                              batch_norm_relu_train, batch_norm_relu_infer,
                                              batch_norm_relu_backward)}


def fused_ops(backend_module: str, *names: str) -> tuple[Callable, ...]:
    """The definitions of the fused ops `names`, bound to the backend module named `backend_module`.

    A backend's __init__ calls this for the fused ops it has no kernel of its own for; the module
    is looked up at call time, so the backend may still be importing when it binds them.
    """
    def bind(name: str) -> Callable:
        definition = FUSED_DEFINITIONS[name]

        def op(*args):
            return definition(sys.modules[backend_module], *args)

        op.__name__ = op.__qualname__ = name
        signature = inspect.signature(definition)
        op.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        op.__doc__ = f"compose.{name} on this backend (no fused kernel of its own)."
        return op

    return tuple(bind(name) for name in names)
