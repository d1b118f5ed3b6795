"""Keras's legacy HDF5 weight files (the format of the published Xception weights), read with h5py.

Layout of such a file (`model.save_weights("x.h5")` in Keras 2, or the `model_weights` group of a
whole-model file):

    /                     attrs: layer_names = [b"block1_conv1", ..., b"predictions"]  (model order)
    /block1_conv1         attrs: weight_names = [b"block1_conv1/kernel:0"]
    /block1_conv1/block1_conv1/kernel:0      the array, shape as Keras stores it

Keras's Xception names every layer except the four shortcut convolutions and their BatchNorms
(they get automatic names such as "conv2d_1" and "batch_normalization_1", which depend on what
else the session had built). Named layers are matched by name; the unnamed conv/BN layers are
matched to the model's shortcut layers ("block<b>_shortcut", "block<b>_shortcut_bn": blocks 2, 3, 4
and 13 in Xception) by their order in the file, and their widths are checked.
"""

from __future__ import annotations

import os
import re

import numpy as np

KerasLayers = list[tuple[str, dict[str, np.ndarray]]]  # (layer name, {weight name: array}), in order


def _weight_name(full: str) -> str:
    """"block1_conv1/kernel:0" -> "kernel" (Keras 2 style); "kernel" stays "kernel"."""
    return full.rsplit("/", 1)[-1].split(":", 1)[0]


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path) -> KerasLayers:
    """Every layer with weights in a legacy Keras HDF5 file, in the file's layer order."""
    import h5py

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no Keras weight file at {path!r}")
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path!r} is not a legacy Keras HDF5 weight file: no 'layer_names' "
                             "attribute (Keras 3 '.weights.h5' files use another layout)")
        layers = []
        for layer_name in (_text(n) for n in root.attrs["layer_names"]):
            group = root[layer_name]
            names = [_text(n) for n in group.attrs.get("weight_names", [])]
            if names:
                layers.append((layer_name, {_weight_name(n): np.asarray(group[n]) for n in names}))
    return layers


_SHORTCUT = re.compile(r"block(\d+)_shortcut")


def _is_conv(weights: dict) -> bool:
    return set(weights) == {"kernel"} and weights["kernel"].ndim == 4


def _is_bn(weights: dict) -> bool:
    return {"gamma", "beta", "moving_mean", "moving_variance"} <= set(weights)


def keras_to_state_dict(layers: KerasLayers, model, source: str = "the Keras weights") -> dict:
    """Map Keras layers onto `model`'s state-dict keys; a clear error on any mismatch.

    Used both for files (via read_keras_h5) and for live Keras models in the tests, so the two
    share one mapping.
    """
    expected = model.state_dict()
    ours = {}
    for key in expected:
        layer, weight = key.rsplit("/", 1)
        ours.setdefault(layer, []).append(weight)
    # The model's own unnamed-in-Keras layers, by block number (its state dict names them).
    our_shortcuts = sorted(int(m.group(1)) for m in map(_SHORTCUT.fullmatch, ours) if m)
    shortcut_names = {f"block{b}_shortcut" for b in our_shortcuts} | {
        f"block{b}_shortcut_bn" for b in our_shortcuts}
    named = {name: w for name, w in layers if name in ours and name not in shortcut_names}
    unnamed = [(name, w) for name, w in layers if name not in named]
    convs = [(n, w) for n, w in unnamed if _is_conv(w)]
    bns = [(n, w) for n, w in unnamed if _is_bn(w)]
    leftover = [n for n, w in unnamed if not (_is_conv(w) or _is_bn(w))]

    missing = [name for name in ours if name not in shortcut_names and name not in named]
    if missing:
        hint = (" (a file without the top, into a model with include_top=True?)"
                if "predictions" in missing else "")
        raise ValueError(f"{source} lack layers this model has: {missing[:6]}"
                         f"{' ...' if len(missing) > 6 else ''}{hint}")
    if leftover:
        hint = (" (a file with the top, into a model with include_top=False?)"
                if "predictions" in leftover else "")
        raise ValueError(f"{source} hold layers this model does not have: {leftover[:6]}{hint}")

    if len(convs) != len(our_shortcuts) or len(bns) != len(our_shortcuts):
        raise ValueError(f"{source} hold {len(convs)} unnamed conv and {len(bns)} unnamed "
                         f"BatchNorm layers; this model's shortcuts need {len(our_shortcuts)} of "
                         f"each (blocks {our_shortcuts})")
    renamed = dict(named)
    for block, (conv_name, conv), (bn_name, bn) in zip(our_shortcuts, convs, bns):
        renamed[f"block{block}_shortcut"] = conv
        renamed[f"block{block}_shortcut_bn"] = bn
        width = expected[f"block{block}_shortcut/kernel"].shape[-1]
        got = (conv["kernel"].shape[-1], bn["gamma"].shape[0])
        if got != (width, width):
            raise ValueError(f"{source}: unnamed layers {conv_name!r} / {bn_name!r} (position "
                             f"{our_shortcuts.index(block) + 1} of {len(our_shortcuts)}) have widths "
                             f"{got}, but block {block}'s shortcut has {width} channels")

    state = {}
    for layer, weights in ours.items():
        source_weights = renamed[layer]
        for weight in weights:
            key = f"{layer}/{weight}"
            if weight not in source_weights:
                raise ValueError(f"{source}: layer {layer!r} has no weight {weight!r} "
                                 f"(it has {sorted(source_weights)})")
            value = source_weights[weight]
            if value.shape != expected[key].shape:
                raise ValueError(f"{source}: {key} has shape {value.shape}, this model expects "
                                 f"{expected[key].shape} (weights for another configuration?)")
            state[key] = value
    return state


def load_keras_weights(model, path) -> None:
    """Load a legacy Keras HDF5 weight file into an Xception model (with or without the top)."""
    model.load_state_dict(keras_to_state_dict(read_keras_h5(path), model, source=repr(str(path))))


def write_keras_h5(path, layers: KerasLayers) -> None:
    """Write layers in the legacy layout (as Keras 2's save_weights did), for tests and exports."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode("utf8") for name, _ in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name, weights in layers:
            group = f.create_group(name)
            full = [f"{name}/{w}:0" for w in weights]
            group.attrs["weight_names"] = [n.encode("utf8") for n in full]
            for n, value in zip(full, weights.values()):
                group.create_dataset(n, data=value)
