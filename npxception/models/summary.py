"""The model summary: one row per layer with output shape, parameter count and multiply-adds."""

from __future__ import annotations

from typing import NamedTuple

from .. import nn


class Row(NamedTuple):
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int  # multiply-adds per image


def _param_count(layer: nn.Layer) -> int:
    total = 0
    for v in layer.weights().values():
        size = 1
        for s in v.shape:
            size *= s
        total += size
    return total


def describe(layer: nn.Layer, input_shape: tuple) -> list[Row]:
    """Rows for `layer` and everything inside it, for one example of shape input_shape."""
    if isinstance(layer, nn.Sequential):
        rows = []
        for child in layer.layers:
            rows += describe(child, input_shape)
            input_shape = child.output_shape(input_shape)
        return rows
    if isinstance(layer, nn.Residual):
        rows = describe(layer.main, input_shape)
        if layer.shortcut is not None:
            rows += describe(layer.shortcut, input_shape)
        return rows + [Row(f"{layer.name}_add", "Add", layer.output_shape(input_shape), 0, 0)]
    return [Row(layer.name, type(layer).__name__, tuple(layer.output_shape(input_shape)),
                _param_count(layer), layer.macs(input_shape))]


def format_summary(title: str, rows: list[Row], counts: dict) -> str:
    header = f"{'Layer (type)':<44}{'Output shape':<20}{'Param #':>12}{'Mult-adds':>16}"
    rule = "=" * len(header)
    lines = [title, rule, header, rule]
    for r in rows:
        lines.append(f"{r.name + ' (' + r.kind + ')':<44}{str(r.output_shape):<20}"
                     f"{r.params:>12,}{r.macs:>16,}")
    lines += [
        rule,
        f"Total params: {counts['total']:,}",
        f"Trainable params: {counts['trainable']:,}",
        f"Non-trainable params: {counts['non_trainable']:,}",
        f"Multiply-adds per image: {sum(r.macs for r in rows):,}",
    ]
    return "\n".join(lines)
