"""Xception written as a PyTorch user writes it: the PyTorch side of the training-step benchmark.

    model = IdiomaticXception(XceptionConfig.small())      # NCHW input, logits out
    model = model.to(memory_format=torch.channels_last)    # the faster layout on the CPU

The architecture is npxception.models.xception's, layer for layer and width for width (the same
XceptionConfig drives both, so the parameter counts are equal: 22,855,952 trainable for the
paper's network), but every layer is PyTorch's stock module with PyTorch's stock padding:

    depthwise   nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False)
    pointwise   nn.Conv2d(Cin, Cout, 1, bias=False)
    stem        nn.Conv2d(..., 3, stride=s, bias=False)                ("valid", as in Keras)
    shortcut    nn.Conv2d(Cin, Cout, 1, stride=2, bias=False)
    batch norm  nn.BatchNorm2d(C, eps=1e-3, momentum=0.01)             (Keras's 0.99 is 1 - 0.01)
    max pool    nn.MaxPool2d(3, stride=2, padding=1)
    head        nn.AdaptiveAvgPool2d(1), nn.Dropout, nn.Linear
    ReLU        nn.ReLU(inplace=True), except where the input is also the residual's skip

It does NOT compute the same numbers as our model or as npxception.testing.torch_xception
(the twin used for parity checks). TensorFlow's "same" padding puts the odd pixel at the bottom
and right; `padding=1` pads both sides. The output sizes agree everywhere, but a stride-2 max
pool over an even-sized map (74x74 -> 37x37 in the paper's network, 28 -> 14 in `small`) reads
windows shifted by one pixel. The weights start from PyTorch's own initialisers and dropout draws
its masks from PyTorch's generator. It is here to time what PyTorch does with the network,
not to check our arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from npxception.models.config import XceptionConfig
from npxception.models.xception import DOWNSAMPLING_WIDTHS


def intermediate(name: str | None) -> nn.Module:
    """The optional activation between a separable convolution's two steps (Figure 10 ablation)."""
    return {None: nn.Identity, "relu": lambda: nn.ReLU(inplace=True), "elu": lambda: nn.ELU(inplace=True)}[name]()


class SeparableConv2d(nn.Module):
    """3x3 depthwise, then 1x1 pointwise, neither with a bias."""

    def __init__(self, cin: int, cout: int, activation: str | None = None):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.activation = intermediate(activation)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.activation(self.depthwise(x)))


class Block(nn.Module):
    """A residual block: main path + (1x1/2 conv + BN shortcut, or the identity, or nothing)."""

    def __init__(self, main: nn.Sequential, shortcut: nn.Module | None, residual: bool):
        super().__init__()
        self.main, self.shortcut, self.residual = main, shortcut, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return self.main(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.main(x) + skip


class IdiomaticXception(nn.Module):
    """Xception for NCHW (or channels_last) float32 input, built from an XceptionConfig."""

    def __init__(self, config: XceptionConfig):
        super().__init__()
        if not isinstance(config, XceptionConfig):
            raise TypeError(f"config must be an XceptionConfig, got {type(config).__name__}")
        self.config = c = config
        w = c.width

        def bn(channels: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(channels, eps=c.bn_epsilon, momentum=1 - c.bn_momentum)

        def sepconv_bn(cin: int, cout: int) -> list[nn.Module]:
            return [SeparableConv2d(cin, cout, c.intermediate_activation), bn(cout)]

        # The first ReLU of a residual block reads the skip's input too, so it must not overwrite it.
        def downsampling(cin: int, c1: int, c2: int, relu_first: bool) -> Block:
            main = ([nn.ReLU()] if relu_first else []) + sepconv_bn(cin, c1) + [nn.ReLU(inplace=True)] \
                + sepconv_bn(c1, c2) + [nn.MaxPool2d(3, stride=2, padding=1)]
            shortcut = nn.Sequential(nn.Conv2d(cin, c2, 1, stride=2, bias=False), bn(c2)) if c.residual else None
            return Block(nn.Sequential(*main), shortcut, c.residual)

        def middle(channels: int) -> Block:
            main = [nn.ReLU()] + sepconv_bn(channels, channels)
            for _ in range(2):
                main += [nn.ReLU(inplace=True)] + sepconv_bn(channels, channels)
            return Block(nn.Sequential(*main), None, c.residual)

        self.stem = nn.Sequential(
            nn.Conv2d(c.input_shape[2], w(32), 3, stride=1 if c.small_input_stem else 2, bias=False),
            bn(w(32)), nn.ReLU(inplace=True),
            nn.Conv2d(w(32), w(64), 3, bias=False), bn(w(64)), nn.ReLU(inplace=True))
        blocks, cin = [], w(64)
        *entry, exit_widths = DOWNSAMPLING_WIDTHS
        for i, (c1, c2) in enumerate(entry):
            blocks.append(downsampling(cin, w(c1), w(c2), relu_first=i > 0))  # block 2 follows the stem's ReLU
            cin = w(c2)
        blocks += [middle(cin) for _ in range(c.middle_blocks)]
        blocks.append(downsampling(cin, w(exit_widths[0]), w(exit_widths[1]), relu_first=True))
        self.blocks = nn.Sequential(*blocks)
        self.exit_tail = nn.Sequential(
            *sepconv_bn(w(exit_widths[1]), w(1536)), nn.ReLU(inplace=True),
            *sepconv_bn(w(1536), w(2048)), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(c.dropout),
                                  nn.Linear(w(2048), c.num_classes)) if c.include_top else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for x (N, C, H, W); without the top, the (N, 2048w, h, w) maps."""
        return self.head(self.exit_tail(self.blocks(self.stem(x))))


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
