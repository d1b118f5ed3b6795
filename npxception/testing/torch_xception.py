"""The same Xception written in PyTorch, as an independent check of our layers and gradients.

    from npxception.testing.torch_xception import TorchXception
    ref = TorchXception(config, dtype=torch.float64)
    ref.load_our_state_dict(model.state_dict())
    logits = ref(x_nchw, training=True, dropout_seed=seed)
    grads = ref.our_gradients()          # keyed and shaped like model.gradients()

Written from the architecture table, not from our layer objects, with PyTorch's own operators:
grouped convolution for depthwise, F.batch_norm, F.max_pool2d. PyTorch has no TensorFlow "same"
padding (the odd pixel goes bottom/right, which a symmetric pad cannot express at 74x74 -> 37x37),
so every "same" layer pads explicitly with F.pad first (-inf for max pooling).
Weights live in PyTorch's layout (OIHW) and are converted from and to Keras's layout.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..backends.reference.dropout import keep_mask
from ..models.config import XceptionConfig
from ..shapes import same_padding_1d


def keras_to_torch(key: str, w: np.ndarray) -> np.ndarray:
    """A weight in Keras's layout -> PyTorch's (conv OIHW, depthwise (C*M, 1, kh, kw), dense (out, in))."""
    name = key.rsplit("/", 1)[1]
    if name == "depthwise_kernel":
        kh, kw, c, m = w.shape
        return w.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    if w.ndim == 4:
        return w.transpose(3, 2, 0, 1)
    if w.ndim == 2:
        return w.T
    return w


def torch_to_keras(key: str, w: np.ndarray, keras_shape: tuple) -> np.ndarray:
    """Inverse of keras_to_torch, for gradients."""
    name = key.rsplit("/", 1)[1]
    if name == "depthwise_kernel":
        kh, kw, c, m = keras_shape
        return w.reshape(c, m, kh, kw).transpose(2, 3, 0, 1)
    if w.ndim == 4:
        return w.transpose(2, 3, 1, 0)
    if w.ndim == 2:
        return w.T
    return w


def pad_same(x: torch.Tensor, k: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow "same" padding of an NCHW tensor, the odd pixel at the bottom/right."""
    top, bottom = same_padding_1d(x.shape[2], k, stride, 1)
    left, right = same_padding_1d(x.shape[3], k, stride, 1)
    return F.pad(x, (left, right, top, bottom), value=value)


class TorchXception(torch.nn.Module):
    def __init__(self, config: XceptionConfig, dtype=torch.float32):
        super().__init__()
        self.config, self.dtype = config, dtype
        self.weights_ = torch.nn.ParameterDict()
        self.shapes: dict[str, tuple] = {}  # our key -> Keras shape
        w, cin = config.width, config.input_shape[2]

        self._conv("block1_conv1", cin, w(32), 3)
        self._bn("block1_conv1_bn", w(32))
        self._conv("block1_conv2", w(32), w(64), 3)
        self._bn("block1_conv2_bn", w(64))
        for block, c0, c1, c2 in ((2, w(64), w(128), w(128)), (3, w(128), w(256), w(256)),
                                  (4, w(256), w(728), w(728)), (13, w(728), w(728), w(1024))):
            if block == 13:
                for i in range(config.middle_blocks):
                    for j in (1, 2, 3):
                        self._sep_bn(f"block{5 + i}_sepconv{j}", w(728), w(728))
            self._sep_bn(f"block{block}_sepconv1", c0, c1)
            self._sep_bn(f"block{block}_sepconv2", c1, c2)
            if config.residual:
                self._conv(f"block{block}_shortcut", c0, c2, 1)
                self._bn(f"block{block}_shortcut_bn", c2)
        self._sep_bn("block14_sepconv1", w(1024), w(1536))
        self._sep_bn("block14_sepconv2", w(1536), w(2048))
        if config.include_top:
            self._param("predictions/kernel", (w(2048), config.num_classes))
            self._param("predictions/bias", (config.num_classes,))

    # ------------------------------------------------------------------ weights
    def _param(self, key: str, keras_shape: tuple) -> None:
        self.shapes[key] = keras_shape
        torch_shape = keras_to_torch(key, np.zeros(keras_shape)).shape
        self.weights_[key.replace("/", "__")] = torch.nn.Parameter(
            torch.zeros(torch_shape, dtype=self.dtype))

    def _buffer(self, key: str, shape: tuple) -> None:
        self.shapes[key] = shape
        self.register_buffer(key.replace("/", "__"), torch.zeros(shape, dtype=self.dtype))

    def _conv(self, name, cin, cout, k):
        self._param(f"{name}/kernel", (k, k, cin, cout))

    def _sep_bn(self, name, cin, cout):
        self._param(f"{name}/depthwise_kernel", (3, 3, cin, 1))
        self._param(f"{name}/pointwise_kernel", (1, 1, cin, cout))
        self._bn(f"{name}_bn", cout)

    def _bn(self, name, c):
        self._param(f"{name}/gamma", (c,))
        self._param(f"{name}/beta", (c,))
        self._buffer(f"{name}/moving_mean", (c,))
        self._buffer(f"{name}/moving_variance", (c,))

    def _get(self, key: str) -> torch.Tensor:
        flat = key.replace("/", "__")
        return self.weights_[flat] if flat in self.weights_ else getattr(self, flat)

    def load_our_state_dict(self, state: dict) -> None:
        """Copy our model.state_dict() (Keras layout) in; the key sets must match exactly."""
        if set(state) != set(self.shapes):
            raise ValueError(f"key mismatch: {sorted(set(state) ^ set(self.shapes))[:6]}")
        with torch.no_grad():
            for key, value in state.items():
                self._get(key).copy_(torch.from_numpy(np.ascontiguousarray(keras_to_torch(key, value))))

    def our_gradients(self) -> dict[str, np.ndarray]:
        """Parameter gradients after backward, keyed and shaped like Xception.gradients()."""
        out = {}
        for flat, p in self.weights_.items():
            key = flat.replace("__", "/")
            out[key] = torch_to_keras(key, p.grad.detach().cpu().numpy(), self.shapes[key])
        return out

    # ------------------------------------------------------------------ the network
    def _conv_bn(self, name, x, stride, padding, training):
        k = self._get(f"{name}/kernel")
        if padding == "same":
            x = pad_same(x, k.shape[2], stride)
        return self._batch_norm(f"{name}_bn", F.conv2d(x, k, stride=stride), training)

    def _sepconv_bn(self, name, x, training):
        dk, pk = self._get(f"{name}/depthwise_kernel"), self._get(f"{name}/pointwise_kernel")
        h = F.conv2d(pad_same(x, 3, 1), dk, groups=x.shape[1])
        if self.config.intermediate_activation == "relu":
            h = F.relu(h)
        elif self.config.intermediate_activation == "elu":
            h = F.elu(h)
        return self._batch_norm(f"{name}_bn", F.conv2d(h, pk), training)

    def _batch_norm(self, name, x, training):
        cfg = self.config
        return F.batch_norm(x, self._get(f"{name}/moving_mean"), self._get(f"{name}/moving_variance"),
                            self._get(f"{name}/gamma"), self._get(f"{name}/beta"), training,
                            1 - cfg.bn_momentum, cfg.bn_epsilon)

    @staticmethod
    def _max_pool(x):
        return F.max_pool2d(pad_same(x, 3, 2, value=-np.inf), 3, 2)

    def _downsampling_block(self, block, x, training, relu_first=True):
        p = f"block{block}"
        shortcut = (self._conv_bn(f"{p}_shortcut", x, 2, "same", training)
                    if self.config.residual else None)
        if relu_first:
            x = F.relu(x)
        x = F.relu(self._sepconv_bn(f"{p}_sepconv1", x, training))
        x = self._max_pool(self._sepconv_bn(f"{p}_sepconv2", x, training))
        return x if shortcut is None else x + shortcut

    def forward(self, x: torch.Tensor, training: bool, dropout_seed: int | None = None):
        """Logits (N, K) for x (N, C, H, W); dropout draws the same mask as ours for dropout_seed."""
        cfg = self.config
        x = F.relu(self._conv_bn("block1_conv1", x, 1 if cfg.small_input_stem else 2, "valid",
                                 training))
        x = F.relu(self._conv_bn("block1_conv2", x, 1, "valid", training))
        x = self._downsampling_block(2, x, training, relu_first=False)
        x = self._downsampling_block(3, x, training)
        x = self._downsampling_block(4, x, training)
        for i in range(cfg.middle_blocks):
            y = x
            for j in (1, 2, 3):
                y = self._sepconv_bn(f"block{5 + i}_sepconv{j}", F.relu(y), training)
            x = x + y if cfg.residual else y
        x = self._downsampling_block(13, x, training)
        x = F.relu(self._sepconv_bn("block14_sepconv1", x, training))
        x = F.relu(self._sepconv_bn("block14_sepconv2", x, training))
        if not cfg.include_top:
            return x
        x = x.mean(dim=(2, 3))
        if training and cfg.dropout > 0:
            if dropout_seed is None:
                raise ValueError("a training forward with dropout needs dropout_seed")
            keep = keep_mask(x.numel(), cfg.dropout, dropout_seed).reshape(tuple(x.shape))
            x = x * torch.from_numpy(keep).to(x.device, x.dtype) / (1 - cfg.dropout)
        return F.linear(x, self._get("predictions/kernel"), self._get("predictions/bias"))
