"""Xception (Chollet, CVPR 2017), built layer by layer as keras.applications.Xception builds it.

The network reads like the paper's Figure 5 (sizes at 299x299 input, width multiplier 1):

    entry flow   block1   conv 32 3x3/2, conv 64 3x3                         -> 147x147x64
                 block2   sepconv 128, sepconv 128, maxpool/2  (+ 1x1/2 conv) -> 74x74x128
                 block3   relu-sepconv 256 x2, maxpool/2       (+ 1x1/2 conv) -> 37x37x256
                 block4   relu-sepconv 728 x2, maxpool/2       (+ 1x1/2 conv) -> 19x19x728
    middle flow  block5-12  relu-sepconv 728 x3                 (+ identity)   -> 19x19x728
    exit flow    block13  relu-sepconv 728, 1024, maxpool/2    (+ 1x1/2 conv) -> 10x10x1024
                 block14  sepconv 1536, relu, sepconv 2048, relu             -> 10x10x2048
    head         global average pool, dropout, dense (logits)

Every convolution has no bias and is followed by BatchNorm (epsilon 1e-3, momentum 0.99); every
padding is TensorFlow's "same" except the two stem convolutions ("valid"). Layer names are Keras's,
so a state-dict key such as "block4_sepconv2/pointwise_kernel" names the same tensor in Keras, in
the published weight files and here. Keras leaves the four shortcut convolutions and their
BatchNorms unnamed; here they are "block{2,3,4,13}_shortcut" and "block{2,3,4,13}_shortcut_bn".

The model outputs logits (Keras applies the softmax inside its last layer; here the loss does).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..backends import get_backend
from .config import SHORTCUT_BLOCKS, XceptionConfig
from .summary import describe, format_summary
from ..preprocessing import preprocess_input

__all__ = ["SHORTCUT_BLOCKS", "Xception", "XceptionConfig", "preprocess_input"]

# Paper widths (c1, c2) of the two separable convolutions of each downsampling block, in the order
# of SHORTCUT_BLOCKS; the middle blocks keep the width of the last entry block.
DOWNSAMPLING_WIDTHS = ((128, 128), (256, 256), (728, 728), (728, 1024))


class _Builder:
    """Makes the layers of one model: same backend, dtype, random stream and BN settings."""

    def __init__(self, config: XceptionConfig, backend, dtype, rng: np.random.Generator, fuse: bool = True):
        self.config, self.rng, self.fuse = config, rng, fuse
        self.common = {"backend": backend, "dtype": dtype}

    def conv(self, name, cin, cout, kernel, stride, padding):
        return nn.Conv2D(name, cin, cout, kernel, stride=stride, padding=padding, rng=self.rng,
                         **self.common)

    def sepconv(self, name, cin, cout):
        return nn.SeparableConv2D(name, cin, cout, 3, padding="same", rng=self.rng,
                                  intermediate_activation=self.config.intermediate_activation,
                                  **self.common)

    def bn(self, name, channels):
        return nn.BatchNorm(name, channels, epsilon=self.config.bn_epsilon,
                            momentum=self.config.bn_momentum, **self.common)

    def relu(self, name):
        return nn.ReLU(name, **self.common)

    def maxpool(self, name):
        return nn.MaxPool2D(name, 3, stride=2, padding="same", **self.common)

    def sequential(self, name, layers):
        """A Sequential; with `fuse`, each BatchNorm + ReLU pair in it runs as one nn.BatchNormReLU."""
        return nn.Sequential(name, nn.fuse_batch_norm_relu(layers) if self.fuse else layers, **self.common)

    def residual(self, name, main, shortcut):
        """main + shortcut, or main alone when the residual connections are switched off."""
        if not self.config.residual:
            return main
        return nn.Residual(name, main, shortcut, **self.common)

    # Xception's pieces, in the order of the table above.
    def stem(self, cin) -> tuple[nn.Layer, int]:
        c = self.config
        c1, c2 = c.width(32), c.width(64)
        stride = 1 if c.small_input_stem else 2
        layers = [
            self.conv("block1_conv1", cin, c1, 3, stride, "valid"), self.bn("block1_conv1_bn", c1),
            self.relu("block1_conv1_act"),
            self.conv("block1_conv2", c1, c2, 3, 1, "valid"), self.bn("block1_conv2_bn", c2),
            self.relu("block1_conv2_act"),
        ]
        return self.sequential("block1", layers), c2

    def downsampling_block(self, block, cin, c1, c2, *, activate_input=True) -> nn.Layer:
        """[ReLU], sepconv c1, BN, ReLU, sepconv c2, BN, maxpool 3x3/2; shortcut 1x1/2 conv + BN.

        Block 2 skips the first ReLU: its input has just been through the stem's ReLU.
        """
        p = f"block{block}"
        main = ([self.relu(f"{p}_sepconv1_act")] if activate_input else []) + [
            self.sepconv(f"{p}_sepconv1", cin, c1), self.bn(f"{p}_sepconv1_bn", c1),
            self.relu(f"{p}_sepconv2_act"),
            self.sepconv(f"{p}_sepconv2", c1, c2), self.bn(f"{p}_sepconv2_bn", c2),
            self.maxpool(f"{p}_pool"),
        ]
        shortcut = None
        if self.config.residual:
            shortcut = self.sequential(f"{p}_shortcut_path", [
                self.conv(f"{p}_shortcut", cin, c2, 1, 2, "same"), self.bn(f"{p}_shortcut_bn", c2)])
        return self.residual(p, self.sequential(f"{p}_main", main), shortcut)

    def middle_block(self, block, channels) -> nn.Layer:
        """3 x (ReLU, sepconv, BN), plus the identity."""
        p = f"block{block}"
        main = []
        for i in (1, 2, 3):
            main += [self.relu(f"{p}_sepconv{i}_act"), self.sepconv(f"{p}_sepconv{i}", channels, channels),
                     self.bn(f"{p}_sepconv{i}_bn", channels)]
        return self.residual(p, self.sequential(f"{p}_main", main), None)

    def exit_tail(self, cin) -> tuple[nn.Layer, int]:
        """Block 14: sepconv 1536, BN, ReLU, sepconv 2048, BN, ReLU (no shortcut)."""
        c1, c2 = self.config.width(1536), self.config.width(2048)
        layers = [
            self.sepconv("block14_sepconv1", cin, c1), self.bn("block14_sepconv1_bn", c1),
            self.relu("block14_sepconv1_act"),
            self.sepconv("block14_sepconv2", c1, c2), self.bn("block14_sepconv2_bn", c2),
            self.relu("block14_sepconv2_act"),
        ]
        return self.sequential("block14", layers), c2

    def head(self, cin) -> nn.Layer:
        c = self.config
        return self.sequential("top", [
            nn.GlobalAvgPool2D("avg_pool", **self.common),
            nn.Dropout("dropout", c.dropout, **self.common),
            nn.Dense("predictions", cin, c.num_classes, rng=self.rng, **self.common),
        ])


def build_xception(config: XceptionConfig, backend, dtype, rng: np.random.Generator,
                   fuse: bool = True) -> nn.Sequential:
    """The whole network as one Sequential of blocks, laid out by SHORTCUT_BLOCKS (fuse: see Xception)."""
    b, w = _Builder(config, backend, dtype, rng, fuse), config.width
    *entry, exit_block = zip(SHORTCUT_BLOCKS, DOWNSAMPLING_WIDTHS)
    stem, c = b.stem(config.input_shape[2])
    blocks = [stem]
    for block, (c1, c2) in entry:
        # The first block's input has just been through the stem's ReLU.
        blocks.append(b.downsampling_block(block, c, w(c1), w(c2), activate_input=block != entry[0][0]))
        c = w(c2)
    first_middle = entry[-1][0] + 1
    blocks += [b.middle_block(first_middle + i, c) for i in range(config.middle_blocks)]
    block, (c1, c2) = exit_block
    blocks.append(b.downsampling_block(block, c, w(c1), w(c2)))
    tail, c = b.exit_tail(w(c2))
    blocks.append(tail)
    if config.include_top:
        blocks.append(b.head(c))
    return b.sequential("xception", blocks)


class Xception:
    """The Xception network on one backend: forward, backward, weights, summary.

        model = Xception(XceptionConfig.small(), backend="cpu", seed=0)
        logits = model.forward(x, training=True)        # x (N, H, W, 3) preprocessed, NHWC
        dx = model.backward(dlogits)                     # fills every layer's grads
        for key, (param, grad) in model.trainable().items(): ...   # optimizers update param in place

    Weights start as Keras's initializers draw them (Glorot uniform kernels, zero biases and betas,
    unit gammas and moving variances) from `seed`; float32 by default, float64 for checks.
    `fuse` (default True) runs each BatchNorm + ReLU pair as one nn.BatchNormReLU, which takes the
    backend's fused kernels when it has them; fuse=False keeps every layer separate (the reference
    the fused network is tested against). Both have the same layers, names and weights.
    """

    def __init__(self, config: XceptionConfig | None = None, backend="auto", seed: int = 0,
                 dtype="float32", fuse: bool = True):
        self.config = config if config is not None else XceptionConfig.paper()
        if not isinstance(self.config, XceptionConfig):
            raise TypeError(f"config must be an XceptionConfig, got {type(self.config).__name__}")
        self.backend = get_backend(backend)
        self.dtype = np.dtype(dtype)
        if self.dtype.type not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.seed = int(seed)
        self.dropout_counter = 0
        self.network = build_xception(self.config, self.backend, self.dtype,
                                      np.random.default_rng(self.seed), fuse=bool(fuse))
        self._leaves = list(self.network.leaves())
        self._dropouts = [leaf for leaf in self._leaves if isinstance(leaf, nn.Dropout)]

    # ------------------------------------------------------------------ forward and backward
    def forward(self, x, training: bool):
        """Logits (N, num_classes) for x (N, H, W, C), a backend array or NumPy array, NHWC.

        Without the top: the (N, h, w, 2048 * width_multiplier) feature maps. A training forward
        uses batch statistics, updates BN's moving statistics and draws new dropout masks.
        """
        if isinstance(x, np.ndarray):
            x = self.backend.to_device(np.ascontiguousarray(x, dtype=self.dtype))
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 4 or shape[3] != self.config.input_shape[2]:
            raise ValueError(f"x must be NHWC (N, H, W, {self.config.input_shape[2]}), "
                             f"got shape {shape}")
        if training:
            self._advance_dropout()
        return self.network.forward(x, bool(training))

    def backward(self, dlogits, on_block_done=None, input_grad: bool = True):
        """Gradient of the loss w.r.t. the input, given d(loss)/d(logits); fills every grad.

        `on_block_done(block)`, if given, is called as each top-level block (self.network.layers)
        finishes its backward, last block first: its gradients are then final, which is when
        data-parallel training starts sending them (npxception.distributed).
        `input_grad=False` (training: nothing needs the images' gradient) returns None and spares
        the first convolution its input gradient.
        """
        if isinstance(dlogits, np.ndarray):
            dlogits = self.backend.to_device(np.ascontiguousarray(dlogits, dtype=self.dtype))
        self._leaves[0].input_grad = bool(input_grad)
        if on_block_done is None:
            return self.network.backward(dlogits)
        for block in reversed(self.network.layers):
            dlogits = block.backward(dlogits)
            on_block_done(block)
        return dlogits

    def dropout_seed(self, counter: int | None = None) -> int:
        """Seed of the dropout masks of training forward number `counter` (default: the next)."""
        counter = self.dropout_counter if counter is None else counter
        return (self.seed % 2**31) * 2**32 + counter % 2**32

    def _advance_dropout(self) -> None:
        # A fresh mask per training step, reproducible from (seed, dropout_counter).
        for layer in self._dropouts:
            layer.seed = self.dropout_seed()
        self.dropout_counter += 1

    def predict(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Inference-mode outputs for a NumPy batch of preprocessed images, as NumPy."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"x must be NHWC with 4 dims, got shape {x.shape}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        outputs = [self.backend.to_numpy(self.forward(x[i:i + batch_size], training=False))
                   for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(outputs, axis=0).astype(self.dtype, copy=False)

    # ------------------------------------------------------------------ weights
    def leaves(self) -> list[nn.Layer]:
        """Every computing layer, in forward order (main path before shortcut)."""
        return list(self._leaves)

    def trainable(self) -> dict:
        """"layer/weight" -> (param, grad) backend arrays; call after a backward."""
        out = {}
        for leaf in self._leaves:
            for key, param in leaf.params.items():
                if key not in leaf.grads:
                    raise RuntimeError("trainable() needs the gradients of a backward pass; "
                                       f"{leaf.name}/{key} has none yet")
                out[f"{leaf.name}/{key}"] = (param, leaf.grads[key])
        return out

    def gradients(self) -> dict[str, np.ndarray]:
        """"layer/weight" -> gradient as NumPy, for every trainable weight (after a backward)."""
        return {k: self.backend.to_numpy(g).copy() for k, (_, g) in self.trainable().items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every weight, including BN's moving statistics, as NumPy copies keyed "layer/weight"."""
        return {f"{leaf.name}/{k}": self.backend.to_numpy(v).copy()
                for leaf in self._leaves for k, v in leaf.weights().items()}

    def load_state_dict(self, state: dict) -> None:
        """Load every weight from `state` (strict: same keys, same shapes; cast to the model's dtype)."""
        slots = {f"{leaf.name}/{k}": leaf for leaf in self._leaves for k in leaf.weights()}
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if missing or unexpected:
            raise ValueError(f"state dict does not fit this model: missing keys {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''} ({len(missing)} in all), "
                             f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
                             f" ({len(unexpected)} in all)")
        arrays = {}
        for key, leaf in slots.items():
            value = np.asarray(state[key])
            expected = tuple(leaf.weights()[key.rsplit("/", 1)[1]].shape)
            if value.shape != expected:
                raise ValueError(f"state dict entry {key!r} has shape {value.shape}, "
                                 f"this model expects {expected}")
            arrays[key] = value
        for key, leaf in slots.items():  # only after every check passed: all or nothing
            name = key.rsplit("/", 1)[1]
            table = leaf.params if name in leaf.params else leaf.state
            table[name] = self.backend.to_device(np.ascontiguousarray(arrays[key], dtype=self.dtype))

    def load_keras_weights(self, path) -> None:
        """Load a Keras legacy HDF5 weight file (e.g. xception_weights_tf_dim_ordering_tf_kernels.h5)."""
        from ..io.keras_h5 import load_keras_weights

        load_keras_weights(self, path)

    # ------------------------------------------------------------------ description
    def num_params(self) -> dict[str, int]:
        trainable = sum(int(np.prod(v.shape)) for leaf in self._leaves for v in leaf.params.values())
        frozen = sum(int(np.prod(v.shape)) for leaf in self._leaves for v in leaf.state.values())
        return {"total": trainable + frozen, "trainable": trainable, "non_trainable": frozen}

    def layer_table(self) -> list:
        """One row per layer (and per residual add): name, type, output shape, params, mult-adds."""
        return describe(self.network, self.config.input_shape)

    def summary(self) -> str:
        """A Keras-like table: layer, output shape, parameters and multiply-adds per image."""
        title = (f"Xception {self.config.input_shape} -> "
                 f"{self.network.output_shape(self.config.input_shape)}, backend "
                 f"{getattr(self.backend, 'name', self.backend.__name__)}, {self.dtype}")
        return format_summary(title, self.layer_table(), self.num_params())
