"""The Xception model: Keras's parameter counts and shapes, PyTorch's loss and gradients in
training mode, training that learns, the ablation switches, and weights in and out."""

from __future__ import annotations

import os

import numpy as np
import pytest

from npxception import Xception, XceptionConfig, nn, preprocess_input
from npxception.io import load_npz, save_npz
from npxception.testing import complete_backends
from npxception.testing.compare import RTOL, rel_error
from tests.conftest import record_error

BACKENDS = complete_backends()


def _loss_and_backward(model, x, labels):
    """Training forward, mean softmax cross-entropy and backward: (loss, logits, dx)."""
    be = model.backend
    logits = model.forward(x, True)
    loss = float(be.to_numpy(be.softmax_cross_entropy(logits, labels, 0.0)))
    dx = model.backward(be.softmax_cross_entropy_backward(1.0, logits, labels, 0.0))
    return loss, logits, dx


def _sgd_step(model, lr):
    be = model.backend
    for param, grad in model.trainable().values():
        be.sgd_update(param, grad, be.zeros(param.shape, param.dtype), lr, 0.0, False, 0.0)


# ---------------------------------------------------------------------------- the paper's network

def test_paper_parameter_counts_are_keras_and_table_3():
    assert Xception(XceptionConfig.paper(), backend="numpy").num_params() == {
        "total": 22_910_480, "trainable": 22_855_952, "non_trainable": 54_528}
    notop = Xception(XceptionConfig.paper(include_top=False), backend="numpy")
    assert notop.num_params()["total"] == 20_861_480


def test_paper_shapes_along_the_way():
    model = Xception(XceptionConfig.paper(), backend="numpy")
    shapes = {row.name: row.output_shape for row in model.layer_table()}
    assert shapes["block1_conv1"] == (149, 149, 32)
    assert shapes["block1_conv2_act"] == (147, 147, 64)
    assert shapes["block2_add"] == (74, 74, 128)
    assert shapes["block3_add"] == (37, 37, 256)
    assert shapes["block4_add"] == (19, 19, 728)
    assert shapes["block12_add"] == (19, 19, 728)
    assert shapes["block13_add"] == (10, 10, 1024)
    assert shapes["block14_sepconv2_act"] == (10, 10, 2048)
    assert shapes["predictions"] == (1000,)
    text = model.summary()
    assert "block4_sepconv2 (SeparableConv2D)" in text and "Trainable params: 22,855,952" in text
    # Multiply-adds of the paper's network: about 8.4 G per 299x299 image.
    assert 8.3e9 < sum(row.macs for row in model.layer_table()) < 8.5e9


def test_state_dict_keys_are_keras_names():
    state = Xception(XceptionConfig.tiny(), backend="numpy").state_dict()
    assert state["block4_sepconv2/pointwise_kernel"].shape[:2] == (1, 1)
    assert "block4_sepconv2_bn/moving_variance" in state
    for block in (2, 3, 4, 13):
        assert state[f"block{block}_shortcut/kernel"].shape[:2] == (1, 1)
        assert f"block{block}_shortcut_bn/gamma" in state
    assert list(state)[:2] == ["block1_conv1/kernel", "block1_conv1_bn/gamma"]


# ---------------------------------------------------------------------------- against PyTorch

def _gradient_errors(ours: dict, theirs: dict) -> dict:
    """Per weight: max |a - e| / max(max |e|, 1e-2 * the largest gradient of the model).

    The floor matters for the betas of the BatchNorms whose output reaches the next training-mode
    BatchNorm through linear steps only (block 13's two BNs, via the add and the max pool, into
    block 14's): BN subtracts the batch mean, so those gradients are exactly zero and both
    frameworks return rounding noise.
    """
    biggest = max(float(np.abs(g).max()) for g in theirs.values())
    return {k: float(np.abs(ours[k] - theirs[k]).max())
            / max(float(np.abs(theirs[k]).max()), 1e-2 * biggest) for k in theirs}


TORCH_CASES = [
    ("tiny", XceptionConfig.tiny()),
    ("tiny relu, no residual", XceptionConfig.tiny(intermediate_activation="relu", residual=False)),
    ("tiny elu, no top", XceptionConfig.tiny(intermediate_activation="elu", include_top=False)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("label, config", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_training_step_matches_pytorch(label, config, backend, dtype, torch_reference):
    """Loss, logits, input gradient and every weight gradient in training mode (batch statistics,
    dropout) against the same network in PyTorch, from the same weights."""
    torch = torch_reference
    from npxception.testing.torch_xception import TorchXception

    model = Xception(config, backend=backend, seed=3, dtype=dtype)
    rng = np.random.default_rng(0)
    # Non-trivial BN parameters, so that gamma and beta matter.
    state = model.state_dict()
    for key in state:
        if key.endswith(("/gamma", "/beta")):
            state[key] = rng.uniform(0.5, 1.5, state[key].shape) * rng.choice([-1, 1], state[key].shape)
    model.load_state_dict(state)
    x = rng.standard_normal((4, *config.input_shape)).astype(dtype)
    labels = rng.integers(0, config.num_classes, 4)
    seed = model.dropout_seed()
    be = model.backend
    if config.include_top:
        loss, out, dx = _loss_and_backward(model, x, labels)
    else:  # the feature extractor: backward a fixed random cotangent
        out = model.forward(x, True)
        dout = rng.standard_normal(out.shape).astype(dtype)
        loss = float(np.sum(be.to_numpy(out) * dout))
        dx = model.backward(dout)

    ref = TorchXception(config, dtype=getattr(torch, dtype))
    ref.load_our_state_dict(state)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    out_t = ref(xt, True, dropout_seed=seed)
    if config.include_top:
        loss_t = torch.nn.functional.cross_entropy(out_t, torch.from_numpy(labels))
    else:
        loss_t = (out_t * torch.from_numpy(dout.transpose(0, 3, 1, 2).copy())).sum()
    loss_t.backward()
    tol = RTOL[np.dtype(dtype)]
    out_t = out_t.detach().numpy()
    if out_t.ndim == 4:
        out_t = out_t.transpose(0, 2, 3, 1)
    errors = {"loss": abs(loss - loss_t.item()) / abs(loss_t.item()),
              "output": rel_error(be.to_numpy(out), out_t),
              "dx": rel_error(be.to_numpy(dx), xt.grad.numpy().transpose(0, 2, 3, 1))}
    grads, grads_t = model.gradients(), ref.our_gradients()
    assert set(grads) == set(grads_t)
    errors.update(_gradient_errors(grads, grads_t))
    for name, err in errors.items():
        record_error(f"xception vs torch {dtype} {name if name in ('loss', 'output', 'dx') else 'weights'}",
                     err)
    bad = {k: f"{v:.2e}" for k, v in errors.items() if not v <= tol}
    assert not bad, f"{label} {backend} {dtype}: errors above {tol:.0e}: {bad}"


# ---------------------------------------------------------------------------- training

@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_model_overfits_a_small_batch(backend):
    model = Xception(XceptionConfig.tiny(dropout=0.0), backend=backend, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16, 16, 3)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    losses = []
    for _ in range(25):
        loss, _, _ = _loss_and_backward(model, x, labels)
        losses.append(loss)
        _sgd_step(model, 0.1)
    assert losses[-1] < 0.2 * losses[0], losses


ABLATIONS = {
    "relu between depthwise and pointwise": {"intermediate_activation": "relu"},
    "elu between depthwise and pointwise": {"intermediate_activation": "elu"},
    "no residual connections": {"residual": False},
    "no middle flow": {"middle_blocks": 0},
    "wider, no dropout": {"width_multiplier": 0.125, "dropout": 0.0},
    "stride-2 stem at 71x71": {"small_input_stem": False, "input_shape": (71, 71, 3)},
}


@pytest.mark.parametrize("changes", ABLATIONS.values(), ids=list(ABLATIONS))
def test_ablation_switches_build_and_train(changes):
    config = XceptionConfig.tiny(**changes)
    model = Xception(config, backend=BACKENDS[-1], seed=0)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, *config.input_shape)).astype(np.float32)
    labels = rng.integers(0, config.num_classes, 4)
    before = model.state_dict()
    loss, logits, dx = _loss_and_backward(model, x, labels)
    _sgd_step(model, 0.01)
    after = model.state_dict()
    assert np.isfinite(loss) and logits.shape == (4, config.num_classes) and dx.shape == x.shape
    # Every kernel moves by SGD, every BN statistic by momentum. (Not every beta: those feeding a
    # training-mode BN through linear steps only have an exactly zero gradient.)
    moved = [k for k in before if k.endswith(("kernel", "moving_mean", "moving_variance"))]
    assert moved and all(not np.array_equal(before[k], after[k]) for k in moved)


def test_intermediate_activation_and_residual_change_the_function():
    x = np.random.default_rng(3).standard_normal((2, 16, 16, 3)).astype(np.float32)
    outputs = [Xception(XceptionConfig.tiny(**c), backend="numpy", seed=0).predict(x)
               for c in ({}, {"intermediate_activation": "relu"}, {"residual": False})]
    assert not np.allclose(outputs[0], outputs[1]) and not np.allclose(outputs[0], outputs[2])


def test_dropout_counter_makes_training_reproducible():
    config = XceptionConfig.tiny(dropout=0.5)
    x = np.random.default_rng(4).standard_normal((4, 16, 16, 3)).astype(np.float32)
    model = Xception(config, backend="numpy", seed=0)
    first = model.forward(x, True)
    assert model.dropout_counter == 1
    second = model.forward(x, True)
    model.forward(x, False)
    assert model.dropout_counter == 2 and not np.allclose(first, second)  # a new mask per step
    replay = Xception(config, backend="numpy", seed=0)
    replay.dropout_counter = 1
    np.testing.assert_allclose(replay.forward(x, True), second, rtol=1e-6)


# ---------------------------------------------------------------------------- inference and weights

@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_is_batched_inference_and_leaves_the_model_unchanged(backend):
    model = Xception(XceptionConfig.tiny(), backend=backend, seed=0)
    x = np.random.default_rng(5).standard_normal((7, 16, 16, 3)).astype(np.float32)
    state = model.state_dict()
    whole = model.backend.to_numpy(model.forward(x, False))
    batched = model.predict(x, batch_size=3)
    assert batched.shape == (7, 5) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.dropout_counter == 0


def test_state_dict_round_trip_and_strict_loading(tmp_path):
    config = XceptionConfig.tiny()
    source, target = Xception(config, backend="numpy", seed=1), Xception(config, backend="numpy", seed=2)
    x = np.random.default_rng(6).standard_normal((3, 16, 16, 3)).astype(np.float32)
    source.forward(x, True)  # moves the BN statistics away from their initial values
    path = tmp_path / "tiny.npz"
    save_npz(path, source.state_dict(), {"step": 7})
    assert os.listdir(tmp_path) == ["tiny.npz"]  # the temporary file was moved into place
    state, metadata = load_npz(path)
    assert metadata == {"step": 7}
    target.load_state_dict(state)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))

    missing = dict(state)
    del missing["block5_sepconv1/depthwise_kernel"]
    with pytest.raises(ValueError, match=r"missing keys \['block5_sepconv1/depthwise_kernel'\]"):
        target.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['extra/kernel'\]"):
        target.load_state_dict({**state, "extra/kernel": np.zeros(1)})
    wrong = {**state, "predictions/bias": np.zeros(6)}
    with pytest.raises(ValueError, match=r"'predictions/bias' has shape \(6,\), this model expects \(5,\)"):
        target.load_state_dict(wrong)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))  # failed loads change nothing


def test_float64_model_and_gradients_dict():
    model = Xception(XceptionConfig.tiny(), backend="numpy", seed=0, dtype="float64")
    x = np.random.default_rng(7).standard_normal((2, 16, 16, 3))
    with pytest.raises(RuntimeError, match="needs the gradients of a backward pass"):
        model.trainable()
    _loss_and_backward(model, x, np.array([0, 1]))
    grads = model.gradients()
    trainable = {k for k, v in model.state_dict().items() if "moving_" not in k}
    assert set(grads) == trainable
    assert all(g.dtype == np.float64 for g in grads.values())
    assert sum(g.size for g in grads.values()) == model.num_params()["trainable"]


def test_preprocess_input_maps_0_255_to_minus_1_1():
    images = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    x = preprocess_input(images)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[[[-1.0, 127 / 127.5 - 1, 1.0]]]], rtol=1e-6)


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="middle_blocks must be an int in \\[0, 8\\]"):
        XceptionConfig.paper(middle_blocks=9)
    with pytest.raises(ValueError, match="intermediate_activation must be one of"):
        XceptionConfig.tiny(intermediate_activation="gelu")
    with pytest.raises(ValueError, match="input_shape"):
        XceptionConfig.tiny(input_shape=(16, 16))
    model = Xception(XceptionConfig.tiny(), backend="numpy")
    with pytest.raises(ValueError, match=r"x must be NHWC \(N, H, W, 3\), got shape \(2, 16, 16, 1\)"):
        model.forward(np.zeros((2, 16, 16, 1), np.float32), False)
    with pytest.raises(ValueError, match="too small"):
        model.predict(np.zeros((1, 4, 4, 3), np.float32))


# ---------------------------------------------------------------------------- fused layers

@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_network_equals_the_unfused_one(backend):
    """Each BatchNorm + ReLU pair as one nn.BatchNormReLU (fused kernels on the cpu backend) gives the
    unfused network's logits, gradients and moving statistics, in training and inference."""
    config = XceptionConfig.tiny(dropout=0.0)
    fused, plain = (Xception(config, backend=backend, seed=3, dtype="float64", fuse=f) for f in (True, False))
    assert [leaf.name for leaf in fused.leaves()] == [leaf.name for leaf in plain.leaves()]
    assert fused.summary() == plain.summary()
    pairs = [u for u in fused.network.compute_layers() if isinstance(u, nn.BatchNormReLU)]
    assert (len(pairs) > 0) == hasattr(fused.backend, "batch_norm_relu_train")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, *config.input_shape))
    labels = rng.integers(0, config.num_classes, 4)
    _assert_same_step(*(_step_outputs(m, x, labels) for m in (fused, plain)))
    state_f, state_p = fused.state_dict(), plain.state_dict()
    for key in state_p:
        assert rel_error(state_f[key], state_p[key]) < 1e-13, key
    infer = [m.backend.to_numpy(m.forward(x, False)) for m in (fused, plain)]
    assert rel_error(*infer) < 1e-12


def test_without_the_input_gradient_the_weight_gradients_are_the_same():
    config = XceptionConfig.tiny(dropout=0.0)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, *config.input_shape))
    labels = rng.integers(0, config.num_classes, 3)
    grads = []
    for input_grad in (True, False):
        model = Xception(config, backend="cpu", seed=1, dtype="float64")
        be = model.backend
        dx = model.backward(be.softmax_cross_entropy_backward(1.0, model.forward(x, True), labels, 0.0),
                            input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        grads.append(model.gradients())
    for key in grads[0]:
        np.testing.assert_array_equal(grads[0][key], grads[1][key], err_msg=key)


def test_cpu_network_without_numpys_openblas_symbols_matches(monkeypatch):
    """Where NumPy's BLAS is not the OpenBLAS of its wheels, the cpu backend's GEMMs run on a pool of
    Python threads and the convolutions build im2col whole: the same network to rounding."""
    from npxception.backends.cpu.tuned import blas

    if not blas.available():
        pytest.skip("NumPy's BLAS is not the OpenBLAS of its wheels: only the fallback road exists")
    config = XceptionConfig.tiny(dropout=0.0)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, *config.input_shape))
    labels = rng.integers(0, config.num_classes, 3)
    runs = []
    for available in (True, False):
        monkeypatch.setattr(blas, "available", lambda available=available: available)
        runs.append(_step_outputs(Xception(config, backend="cpu", seed=2, dtype="float64"), x, labels))
    _assert_same_step(*runs)


def _step_outputs(model, x, labels):
    """(loss, logits, dx, gradients) of one training forward and backward, as NumPy arrays."""
    loss, logits, dx = _loss_and_backward(model, x, labels)
    be = model.backend
    return loss, be.to_numpy(logits), be.to_numpy(dx), model.gradients()


def _assert_same_step(a, b):
    """Two _step_outputs agree to float64 rounding (loss 1e-13, the rest 1e-12)."""
    assert rel_error(a[0], b[0]) < 1e-13
    assert rel_error(a[1], b[1]) < 1e-12 and rel_error(a[2], b[2]) < 1e-12
    for key in b[3]:
        assert rel_error(a[3][key], b[3][key]) < 1e-12, key
