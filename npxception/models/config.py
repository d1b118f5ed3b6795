"""XceptionConfig: every choice that shapes the network, with the paper's values as defaults."""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np

INTERMEDIATE_ACTIVATIONS = (None, "relu", "elu")
# The downsampling blocks, whose shortcut is a strided 1x1 conv + BN: entry flow 2-4, exit block 13.
# The middle blocks (identity shortcuts) lie between the last entry block and the exit block.
SHORTCUT_BLOCKS = (2, 3, 4, 13)


@dataclass(frozen=True)
class XceptionConfig:
    """What to build. The defaults are the paper's network exactly as Keras builds it.

    input_shape: (H, W, C) of one image. Keras needs H, W >= 71; with `small_input_stem` any size
        that survives the four stride-2 stages works here.
    num_classes: width of the classifier (only with include_top).
    include_top: global average pool, dropout and the classifier; without it the model is the
        2048-channel feature extractor and returns (N, h, w, 2048) maps.
    width_multiplier: scales every layer's channel count (728 -> round(728 * m)).
    middle_blocks: number of middle-flow blocks (8 in the paper, at most 8: blocks 5-12).
    dropout: rate of the dropout before the classifier in training (the paper trains with 0.5;
        inference is unaffected, so the network still matches Keras's).
    intermediate_activation: None (the paper), "relu" or "elu" between each separable
        convolution's depthwise and pointwise steps (the paper's Figure 10 ablation).
    residual: the shortcut connections of blocks 2-13 (off: the Figure 9 ablation).
    small_input_stem: the first convolution uses stride 1 instead of 2, for small images such as
        CIFAR's 32x32 (the stem then keeps twice the resolution).
    bn_epsilon, bn_momentum: Keras's BatchNormalization settings for Xception.
    """

    input_shape: tuple[int, int, int] = (299, 299, 3)
    num_classes: int = 1000
    include_top: bool = True
    width_multiplier: float = 1.0
    middle_blocks: int = 8
    dropout: float = 0.5
    intermediate_activation: str | None = None
    residual: bool = True
    small_input_stem: bool = False
    bn_epsilon: float = 1e-3
    bn_momentum: float = 0.99

    def __post_init__(self):
        # Every setting is checked here, once, naming it; numpy integers count as ints.
        try:
            shape = tuple(_index(s) for s in self.input_shape)
        except TypeError:
            shape = ()
        if len(shape) != 3 or not all(s is not None and s >= 1 for s in shape):
            raise ValueError(f"input_shape must be (H, W, C) positive ints, got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        num_classes = _index(self.num_classes)
        if num_classes is None or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {self.num_classes!r}")
        object.__setattr__(self, "num_classes", num_classes)
        middle_blocks = _index(self.middle_blocks)
        if middle_blocks is None or not 0 <= middle_blocks <= 8:
            raise ValueError(f"middle_blocks must be an int in [0, 8] (blocks 5-12), "
                             f"got {self.middle_blocks!r}")
        object.__setattr__(self, "middle_blocks", middle_blocks)
        for name, ok, expected in (
                ("width_multiplier", lambda v: v > 0, "> 0"),
                ("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
                ("bn_epsilon", lambda v: v > 0, "> 0"),
                ("bn_momentum", lambda v: 0 <= v <= 1, "in [0, 1]")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or not ok(value):
                raise ValueError(f"{name} must be a finite number {expected}, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("include_top", "residual", "small_input_stem"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.intermediate_activation not in INTERMEDIATE_ACTIVATIONS:
            raise ValueError(f"intermediate_activation must be one of {INTERMEDIATE_ACTIVATIONS}, "
                             f"got {self.intermediate_activation!r}")

    def width(self, channels: int) -> int:
        """A layer's channel count after the width multiplier (at least 1)."""
        return max(1, round(channels * self.width_multiplier))

    def replace(self, **changes) -> XceptionConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def paper(cls, **changes) -> XceptionConfig:
        """Chollet (2017) / keras.applications.Xception: 299x299x3, 1000 classes, 22,855,952
        trainable parameters."""
        return cls(**changes)

    @classmethod
    def small(cls, **changes) -> XceptionConfig:
        """32x32x3 images, 10 classes (CIFAR-size): a quarter of the paper's width, two middle
        blocks and a stride-1 stem; entry, middle and exit flows are all there. Trains an epoch of
        10,000 images in about a minute on two CPU cores with the cpu backend."""
        base = cls(input_shape=(32, 32, 3), num_classes=10, width_multiplier=0.25,
                   middle_blocks=2, dropout=0.2, small_input_stem=True)
        return base.replace(**changes)

    @classmethod
    def tiny(cls, **changes) -> XceptionConfig:
        """16x16x3 images, 5 classes, 1/16 of the paper's width, one middle block: for tests."""
        base = cls(input_shape=(16, 16, 3), num_classes=5, width_multiplier=1 / 16,
                   middle_blocks=1, dropout=0.25, small_input_stem=True)
        return base.replace(**changes)


def _index(value) -> int | None:
    """An int from an int or numpy integer (not a bool, not a float); None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None
