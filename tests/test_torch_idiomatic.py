"""benchmarks/torch_idiomatic.py builds the same network as ours: same parameters, same output sizes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the idiomatic model is PyTorch")

from benchmarks.torch_idiomatic import IdiomaticXception, trainable_parameters  # noqa: E402
from npxception import Xception, XceptionConfig  # noqa: E402


def our_parameter_sizes(config: XceptionConfig) -> list[int]:
    """Sizes of every tensor Xception.trainable() hands the optimizer (each leaf's params)."""
    model = Xception(config, backend="numpy", seed=0)
    return sorted(int(np.prod(p.shape)) for leaf in model.leaves() for p in leaf.params.values())


@pytest.mark.parametrize("config", [
    XceptionConfig.tiny(), XceptionConfig.small(), XceptionConfig.paper(),
    XceptionConfig.tiny(residual=False), XceptionConfig.tiny(intermediate_activation="relu", include_top=False),
], ids=["tiny", "small", "paper", "tiny-no-residual", "tiny-relu-no-top"])
def test_same_parameters_as_ours(config):
    ours = our_parameter_sizes(config)
    theirs = IdiomaticXception(config)
    assert sorted(p.numel() for p in theirs.parameters() if p.requires_grad) == ours
    assert trainable_parameters(theirs) == sum(ours)
    moving = sum(b.numel() for name, b in theirs.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert moving == Xception(config, backend="numpy").num_params()["non_trainable"]


def test_paper_count_is_kerass():
    assert trainable_parameters(IdiomaticXception(XceptionConfig.paper())) == 22_855_952


@pytest.fixture
def one_torch_thread():
    # PyTorch 2.13's CPU backward of a strided 1x1 channels_last convolution corrupts memory at some
    # small shapes on 2 threads (Conv2d(4, 8, 1, stride=2) on a (3, 4, 12, 12) input crashed in most
    # runs of a few hundred steps); the sizes checked here do not depend on the thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("channels_last", [False, True])
def test_output_sizes_match_ours(channels_last, one_torch_thread):
    torch.manual_seed(0)
    for config in (XceptionConfig.tiny(), XceptionConfig.tiny(include_top=False)):
        model = IdiomaticXception(config)
        x = torch.randn(2, 3, 16, 16)
        if channels_last:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        y = model(x)
        expected = Xception(config, backend="numpy").network.output_shape(config.input_shape)
        # ours is NHWC: (h, w, C) per image -> PyTorch's (C, h, w)
        assert tuple(y.shape[1:]) == (tuple(expected) if len(expected) == 1 else (expected[2], *expected[:2]))
        y.square().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_config_type_is_checked():
    with pytest.raises(TypeError, match="config must be an XceptionConfig"):
        IdiomaticXception({"input_shape": (32, 32, 3)})
