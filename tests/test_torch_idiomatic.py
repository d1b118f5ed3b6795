"""benchmarks/torch_idiomatic.py builds the same network as ours: same parameters, same output sizes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the idiomatic model is PyTorch")

from benchmarks.torch_idiomatic import IdiomaticXception, trainable_parameters  # noqa: E402
from npxception import Xception, XceptionConfig  # noqa: E402
from npxception.testing.isolated import cpu_name, run_python  # noqa: E402


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


# The check runs in a child process: PyTorch 2.13's oneDNN backward of a strided 1x1 channels_last
# convolution (the shortcut) corrupts the heap on some CPUs (glibc aborts the process: AMD EPYC Zen 3,
# AVX2 only, at one thread; an AVX-512 host at two). In-process, that abort would end the whole suite.
SIZES_CHECK = """
import sys, torch
torch.backends.mkldnn.enabled = {onednn}
from benchmarks.torch_idiomatic import IdiomaticXception
from npxception import Xception, XceptionConfig
torch.manual_seed(0)
for config in (XceptionConfig.tiny(), XceptionConfig.tiny(include_top=False)):
    for threads in (1, 2):
        torch.set_num_threads(threads)
        model = IdiomaticXception(config)
        x = torch.randn(2, 3, 16, 16)
        if {channels_last}:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        y = model(x)
        expected = Xception(config, backend="numpy").network.output_shape(config.input_shape)
        # ours is NHWC: (h, w, C) per image -> PyTorch's (C, h, w)
        assert tuple(y.shape[1:]) == (tuple(expected) if len(expected) == 1 else (expected[2], *expected[:2])), \
            (config, tuple(y.shape))
        y.square().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), config
print("sizes ok")
"""


@pytest.mark.parametrize("onednn", [False, True], ids=["native-kernels", "onednn"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_output_sizes_match_ours(channels_last, onednn):
    """Forward and backward on 1 and 2 threads: output sizes as ours, every gradient finite. PyTorch's
    native kernels always run; its oneDNN kernels (what the benchmark times) skip where they crash."""
    done = run_python(SIZES_CHECK.format(onednn=onednn, channels_last=channels_last), timeout=300)
    if done.crashed and onednn:
        layout = "channels_last" if channels_last else "NCHW"
        pytest.skip(f"PyTorch {torch.__version__}'s oneDNN {layout} training step crashed ({done.how}) on "
                    f"{cpu_name()}; the native-kernels case checks the same sizes")
    assert done.returncode == 0 and "sizes ok" in done.stdout, f"{done.how}:\n{done.output_tail()}"


def test_config_type_is_checked():
    with pytest.raises(TypeError, match="config must be an XceptionConfig"):
        IdiomaticXception({"input_shape": (32, 32, 3)})
