"""TrainConfig: every setting that decides the arithmetic of a run, each validated where it enters.

The field defaults are the paper's ImageNet recipe; `TrainConfig.small()` is the recipe for
`XceptionConfig.small()` on the built-in shapes, and the command line takes its defaults, its
help texts and its flags (`--<field-name>`) from these fields, so there is one place to change a
default.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from dataclasses import dataclass, field

from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES


class SettingError(ValueError):
    """A training setting outside its range; `name` is the TrainConfig field (the CLI's --name)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name} {message}")
        self.name, self.message = name, message


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class TrainConfig:
    """Everything that decides the arithmetic of a run (saved in the checkpoint)."""

    epochs: int = field(default=10, metadata=_help("passes over the training images"))
    batch_size: int = field(default=64, metadata=_help("images per optimisation step"))
    optimizer: str = field(default="sgd", metadata=_help("the paper: sgd (ImageNet), rmsprop (JFT)",
                                                         choices=OPTIMIZERS))
    lr: float = field(default=0.045, metadata=_help("peak learning rate"))
    momentum: float = field(default=0.9, metadata=_help("momentum of sgd, nesterov and rmsprop, in [0, 1)"))
    weight_decay: float = field(default=1e-5, metadata=_help("L2 on kernels"))
    schedule: str = field(default="step", metadata=_help(
        "step: x--decay-rate every --decay-epochs (the paper: 0.94 every 2)", choices=SCHEDULES))
    warmup_epochs: float = field(default=0.0, metadata=_help("linear warm-up of the learning rate"))
    decay_rate: float = field(default=0.94, metadata=_help("step schedule's factor, in (0, 1]"))
    decay_epochs: float = field(default=2.0, metadata=_help("step schedule's period in epochs"))
    clip_norm: float = field(default=0.0, metadata=_help("clip gradients to this global norm (0: off)"))
    ema_decay: float = field(default=0.0, metadata=_help(
        "exponential moving average of the weights for evaluation, e.g. 0.999 (0: off)"))
    label_smoothing: float = field(default=0.0, metadata=_help("in [0, 1)"))
    augment: bool = field(default=True, metadata=_help("random crop (pad 4) and flip"))
    seed: int = field(default=0, metadata=_help("weights, shuffling, augmentation, dropout"))
    eval_batch_size: int = field(default=250, metadata=_help("images per evaluation batch"))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), f.type))
        _at_least(self, "epochs", 1)
        _at_least(self, "batch_size", 1)
        _at_least(self, "eval_batch_size", 1)
        _at_least(self, "seed", 0)  # NumPy's generators take no negative seed, and would not say which
        if self.optimizer not in OPTIMIZERS:
            raise SettingError("optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise SettingError("schedule", f"must be one of {SCHEDULES}, got {self.schedule!r}")
        _in_range(self, "lr", self.lr > 0, "> 0")
        _in_range(self, "momentum", 0 <= self.momentum < 1, "in [0, 1)")
        _in_range(self, "weight_decay", self.weight_decay >= 0, ">= 0")
        _in_range(self, "warmup_epochs", self.warmup_epochs >= 0, ">= 0")
        _in_range(self, "decay_rate", 0 < self.decay_rate <= 1, "in (0, 1]")
        _in_range(self, "decay_epochs", self.decay_epochs > 0, "> 0")
        _in_range(self, "clip_norm", self.clip_norm >= 0, ">= 0 (0 disables clipping)")
        _in_range(self, "ema_decay", 0 <= self.ema_decay < 1, "in [0, 1) (0 disables averaging)")
        _in_range(self, "label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)")

    @classmethod
    def small(cls, **changes) -> TrainConfig:
        """`npxception train` with no options: small() on 6,000 built-in 32x32 images, a few minutes
        on two cores. SGD with Nesterov momentum and a short warm-up then cosine decay reaches well
        above 95% validation accuracy in that time."""
        base = dict(epochs=5, batch_size=64, optimizer="nesterov", lr=0.05, schedule="cosine",
                    warmup_epochs=0.5, weight_decay=1e-5, ema_decay=0.0)
        return cls(**{**base, **changes})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from `dataclasses.asdict` output (a checkpoint's header); unknown keys refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SettingError(unknown[0], f"is not a training setting (known: {sorted(names)})")
        return cls(**values)


def _checked(name: str, value, kind: str):
    """`value` as the field's Python type: numpy integers and floats accepted, bools never numbers."""
    if kind == "bool":
        if isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype == bool):
            return bool(value)
        raise SettingError(name, f"must be True or False, got {value!r}")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise SettingError(name, f"must be a string, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingError(name, f"must be a number, got {value!r}")
    if kind == "int":
        try:
            return operator.index(value)
        except TypeError:
            raise SettingError(name, f"must be an integer, got {value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise SettingError(name, f"must be a finite number, got {value!r}")
    return value


def _at_least(config: TrainConfig, name: str, low: int) -> None:
    value = getattr(config, name)
    if value < low:
        raise SettingError(name, f"must be >= {low}, got {value!r}")


def _in_range(config: TrainConfig, name: str, ok: bool, expected: str) -> None:
    if not ok:
        raise SettingError(name, f"must be {expected}, got {getattr(config, name)!r}")
