"""SGD (momentum, Nesterov), RMSprop with momentum, Adam and AdamW, with L2 weight decay.

The arithmetic lives in the backend (`sgd_update`, `rmsprop_update`, `adam_update`; formulas in
`npxception/backends/reference/optim.py`), so on the cuda backend every update is a kernel on the
device and the weights never leave it. An optimizer here only owns the slots (velocity, moments),
allocated with the backend's `zeros` the first time it sees a parameter, and the step counter.

Weight decay (the paper: 1e-5) applies to kernels only (keys ending in "kernel": convolutions,
depthwise/pointwise and dense kernels), not to biases or batch-norm scales and offsets, as
Keras's `kernel_regularizer` does.

Parameters arrive as `model.trainable()`: key -> (param, grad), updated in place.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..backends import get_backend


def decays(key: str) -> bool:
    """Whether weight decay applies to the weight named `key` ("<layer>/<weight>")."""
    return key.endswith("kernel")


class Optimizer:
    """Base class: slots per parameter, a step counter, and saving / restoring both."""

    slot_names: tuple[str, ...] = ()

    def __init__(self, backend, weight_decay: float = 0.0):
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.backend = get_backend(backend)
        self.weight_decay = float(weight_decay)
        self.steps = 0
        self.slots: dict[str, dict[str, object]] = {}

    def _slots_for(self, key: str, p) -> dict:
        if key not in self.slots:
            self.slots[key] = {name: self.backend.zeros(p.shape, p.dtype) for name in self.slot_names}
        return self.slots[key]

    def step(self, params: Mapping[str, tuple], lr: float) -> None:
        """Update every (param, grad) in place with learning rate `lr`."""
        self.steps += 1
        for key, (p, g) in params.items():
            wd = self.weight_decay if decays(key) else 0.0
            self._update(p, g, self._slots_for(key, p), float(lr), wd)

    def _update(self, p, g, slots: dict, lr: float, weight_decay: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """"steps" and "<param key>/<slot>" -> NumPy array."""
        state = {"steps": np.asarray(self.steps, dtype=np.int64)}
        for key, slots in self.slots.items():
            for name, value in slots.items():
                state[f"{key}/{name}"] = self.backend.to_numpy(value)
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray],
                        like: Mapping[str, np.ndarray] | None = None) -> None:
        """Restore `state_dict()` output. With `like` (the model's state dict) every slot must belong
        to one of its weights and have that weight's shape; slots take its dtype. All or nothing."""
        steps = np.asarray(state.get("steps", -1))
        if steps.shape != () or not np.issubdtype(steps.dtype, np.integer) or steps < 0:
            raise ValueError(f"optimizer state needs 'steps', a non-negative integer, got {state.get('steps')!r}")
        slots: dict[str, dict[str, object]] = {}
        for full_key, value in state.items():
            if full_key == "steps":
                continue
            key, _, name = full_key.rpartition("/")
            if name not in self.slot_names:
                raise ValueError(f"optimizer state has slot {name!r}; {type(self).__name__} has "
                                 f"{self.slot_names}")
            value = checked_like(value, key, like, f"optimizer slot {full_key!r}")
            slots.setdefault(key, {})[name] = value
        self.steps = int(steps)
        self.slots = {key: {name: self.backend.to_device(value) for name, value in items.items()}
                      for key, items in slots.items()}


def checked_like(value, key: str, like: Mapping[str, np.ndarray] | None, what: str) -> np.ndarray:
    """`value` as a contiguous array of weight `key`'s shape and dtype (as found in `like`)."""
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.floating):
        raise ValueError(f"{what} must hold floats, got dtype {value.dtype}")
    if like is None:
        return np.array(value)
    if key not in like:
        raise ValueError(f"{what} belongs to no weight of this model (no {key!r})")
    expected = np.shape(like[key])
    if value.shape != expected:
        raise ValueError(f"{what} has shape {value.shape}, the weight {key!r} has {expected}")
    return np.array(value, dtype=np.asarray(like[key]).dtype, order="C")


class SGD(Optimizer):
    """v = momentum * v - lr * g;  p += v  (Nesterov: p += momentum * v - lr * g)."""

    slot_names = ("velocity",)

    def __init__(self, backend, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(backend, weight_decay)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, p, g, slots, lr, weight_decay):
        self.backend.sgd_update(p, g, slots["velocity"], lr, self.momentum, self.nesterov, weight_decay)


class RMSprop(Optimizer):
    """ms = rho * ms + (1 - rho) * g^2;  mom = momentum * mom + lr * g / sqrt(ms + eps);  p -= mom."""

    slot_names = ("mean_square", "momentum")

    def __init__(self, backend, rho: float = 0.9, momentum: float = 0.9, epsilon: float = 1e-7,
                 weight_decay: float = 0.0):
        super().__init__(backend, weight_decay)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)

    def _update(self, p, g, slots, lr, weight_decay):
        self.backend.rmsprop_update(p, g, slots["mean_square"], slots["momentum"], lr, self.rho,
                                    self.momentum, self.epsilon, weight_decay)


class Adam(Optimizer):
    """Adam with bias correction; `decoupled=True` is AdamW (p -= lr * wd * p beside the step)."""

    slot_names = ("m", "v")

    def __init__(self, backend, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(backend, weight_decay)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.decoupled = bool(decoupled)

    def _update(self, p, g, slots, lr, weight_decay):
        self.backend.adam_update(p, g, slots["m"], slots["v"], lr, self.beta1, self.beta2, self.epsilon,
                                 weight_decay, self.decoupled, self.steps)


OPTIMIZERS = ("sgd", "nesterov", "rmsprop", "adam", "adamw")


def make_optimizer(name: str, backend, *, momentum: float = 0.9, weight_decay: float = 0.0) -> Optimizer:
    """An optimizer by name: sgd, nesterov (SGD with Nesterov momentum), rmsprop, adam, adamw."""
    if name in ("sgd", "nesterov"):
        return SGD(backend, momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSprop(backend, momentum=momentum, weight_decay=weight_decay)
    if name in ("adam", "adamw"):
        return Adam(backend, weight_decay=weight_decay, decoupled=name == "adamw")
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
