"""Optimizers against updates computed by hand, schedules, Polyak averaging, gradient clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npxception.backends import get_backend
from npxception.train import EMA, SGD, Adam, RMSprop, Schedule, clip_by_global_norm, make_optimizer
from npxception.testing.compare import assert_close


BACKENDS = ["numpy", "cpu"]
LR = 0.1


def _run(optimizer, steps):
    """Apply `steps` = [(grad_kernel, grad_bias), ...]; returns (kernel, bias) after each step.

    The kernel [1, -2] gets weight decay, the bias [1] never does.
    """
    be = optimizer.backend
    kernel, bias = be.to_device(np.array([1.0, -2.0])), be.to_device(np.array([1.0]))
    out = []
    for gk, gb in steps:
        params = {"dense/kernel": (kernel, be.to_device(np.array(gk))),
                  "dense/bias": (bias, be.to_device(np.array(gb)))}
        optimizer.step(params, LR)
        out.append((be.to_numpy(kernel).copy(), be.to_numpy(bias).copy()))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_momentum_by_hand(backend):
    steps = _run(SGD(backend, momentum=0.9, weight_decay=0.01), [([0.5, 0.25], [0.5])] * 2)
    # step 1: g' = g + 0.01 p = [0.51, 0.23];  v = -0.1 g' = [-0.051, -0.023];  p += v
    assert_close(steps[0][0], np.array([0.949, -2.023]), name="kernel step 1")
    assert_close(steps[0][1], np.array([0.95]), name="bias step 1 (no decay)")
    # step 2: g' = [0.50949, 0.22977];  v = 0.9 v - 0.1 g' = [-0.096849, -0.043677]
    assert_close(steps[1][0], np.array([0.852151, -2.066677]), name="kernel step 2")
    assert_close(steps[1][1], np.array([0.95 - 0.045 - 0.05]), name="bias step 2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_nesterov_by_hand(backend):
    steps = _run(SGD(backend, momentum=0.9, nesterov=True, weight_decay=0.01), [([0.5, 0.25], [0.5])])
    # v = [-0.051, -0.023];  p += 0.9 v - 0.1 g' = [-0.0459 - 0.051, -0.0207 - 0.023]
    assert_close(steps[0][0], np.array([0.9031, -2.0437]), name="kernel")
    assert_close(steps[0][1], np.array([1 - 0.045 - 0.05]), name="bias")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rmsprop_with_momentum_by_hand(backend):
    steps = _run(RMSprop(backend, rho=0.9, momentum=0.9, epsilon=1e-7), [([0, 0], [0.5]), ([0, 0], [-0.25])])
    # step 1: ms = 0.1 * 0.25 = 0.025;  mom = 0.1 * 0.5 / sqrt(0.025 + 1e-7);  p -= mom
    mom1 = 0.05 / math.sqrt(0.0250001)
    assert_close(steps[0][1], np.array([1 - mom1]), name="step 1")
    # step 2: ms = 0.9 * 0.025 + 0.1 * 0.0625 = 0.02875;  mom = 0.9 mom + 0.1 * (-0.25) / sqrt(ms + eps)
    mom2 = 0.9 * mom1 - 0.025 / math.sqrt(0.02875 + 1e-7)
    assert_close(steps[1][1], np.array([1 - mom1 - mom2]), name="step 2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_by_hand(backend):
    steps = _run(Adam(backend, epsilon=1e-7), [([0, 0], [0.5]), ([0, 0], [-0.25])])
    # step 1: m_hat = g, v_hat = g^2: the step is lr * 0.5 / (0.5 + eps)
    p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-7)
    assert_close(steps[0][1], np.array([p1]), name="step 1")
    # step 2: m = 0.9 * 0.05 - 0.1 * 0.25 = 0.02;  v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225
    m_hat, v_hat = 0.02 / (1 - 0.9**2), 0.00031225 / (1 - 0.999**2)
    assert_close(steps[1][1], np.array([p1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-7)]), name="step 2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_l2_versus_adamw_decoupled_decay(backend):
    coupled = _run(Adam(backend, epsilon=1e-7, weight_decay=0.01), [([0.5, 0.25], [0.5])])
    decoupled = _run(Adam(backend, epsilon=1e-7, weight_decay=0.01, decoupled=True), [([0.5, 0.25], [0.5])])
    # L2: the decayed gradient g' = [0.51, 0.23] goes through Adam, whose first step is lr * sign(g').
    assert_close(coupled[0][0], np.array([1 - 0.1 * 0.51 / (0.51 + 1e-7), -2 - 0.1 * 0.23 / (0.23 + 1e-7)]),
                 name="adam + L2")
    # AdamW: the Adam step on g alone, plus lr * wd * p.
    assert_close(decoupled[0][0], np.array([1 - 0.1 * 0.5 / (0.5 + 1e-7) - 0.1 * 0.01 * 1.0,
                                            -2 - 0.1 * 0.25 / (0.25 + 1e-7) + 0.1 * 0.01 * 2.0]), name="adamw")


@pytest.mark.parametrize("name", ["sgd", "nesterov", "rmsprop", "adam", "adamw"])
def test_optimizer_state_round_trip_continues_exactly(name):
    grads = [([0.5, 0.25], [0.5]), ([-0.3, 0.1], [0.2]), ([0.2, -0.4], [-0.1])]
    straight = _run(make_optimizer(name, "numpy", weight_decay=0.01), grads)
    first = make_optimizer(name, "numpy", weight_decay=0.01)
    _run(first, grads[:1])
    second = make_optimizer(name, "numpy", weight_decay=0.01)
    second.load_state_dict(first.state_dict())
    # Restart from the weights after step 1 and replay steps 2 and 3.
    be = second.backend
    kernel, bias = straight[0][0].copy(), straight[0][1].copy()
    for gk, gb in grads[1:]:
        second.step({"dense/kernel": (kernel, be.to_device(np.array(gk))),
                     "dense/bias": (bias, be.to_device(np.array(gb)))}, LR)
    np.testing.assert_array_equal(kernel, straight[2][0])
    np.testing.assert_array_equal(bias, straight[2][1])


def test_make_optimizer_rejects_unknown_names():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("lbfgs", "numpy")


# --------------------------------------------------------------------------- schedules

def test_step_schedule_is_the_papers():
    s = Schedule(0.045, "step", epochs=10)
    assert s(0) == s(1.99) == 0.045
    assert s(2.0) == pytest.approx(0.045 * 0.94)
    assert s(5.5) == pytest.approx(0.045 * 0.94**2)


def test_cosine_and_warmup():
    cos = Schedule(0.1, "cosine", epochs=4)
    assert cos(0) == pytest.approx(0.1) and cos(2) == pytest.approx(0.05) and cos(4) == pytest.approx(0)
    assert cos(1) == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)) / 2)
    warm = Schedule(0.1, "cosine", epochs=4, warmup_epochs=1)
    assert warm(0.5) == pytest.approx(0.05)       # half-way up the ramp, cosine not started
    assert warm(1) == pytest.approx(0.1) and warm(2.5) == pytest.approx(0.05)
    const = Schedule(0.1, "constant", epochs=4, warmup_epochs=2)
    assert const(1) == pytest.approx(0.05) and const(3) == 0.1


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError, match="schedule must be one of"):
        Schedule(0.1, "linear")
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        Schedule(0.0)


# --------------------------------------------------------------------------- EMA and clipping

@pytest.mark.parametrize("backend", BACKENDS)
def test_ema_copies_first_then_averages_with_warmup_decay(backend):
    be = get_backend(backend)
    ema = EMA(backend, decay=0.999)
    p = be.to_device(np.array([2.0]))
    ema.update({"w": (p, None)})
    assert_close(ema.state_dict()["w"], np.array([2.0]), name="first update copies")
    be.scale_(p, 0.5)  # p = 1
    ema.update({"w": (p, None)})
    # decay = min(0.999, (1 + 1) / (10 + 1)) = 2/11:  2/11 * 2 + 9/11 * 1
    assert_close(ema.state_dict()["w"], np.array([13 / 11]), name="second update")
    ema.updates = 10_000
    assert ema.current_decay() == 0.999


def test_ema_swaps_weights_in_and_back():
    from npxception import Xception, XceptionConfig

    model = Xception(XceptionConfig.tiny(), backend="numpy", seed=0)
    own = model.state_dict()
    ema = EMA("numpy", 0.9)
    averaged = {k: np.full_like(v, 0.5) for k, v in own.items() if not k.endswith(("moving_mean",
                                                                                  "moving_variance"))}
    ema.load_state_dict(averaged, updates=3)
    with ema.swapped_in(model):
        inside = model.state_dict()
        assert all(np.all(inside[k] == 0.5) for k in averaged)
        assert all(np.array_equal(inside[k], own[k]) for k in own if k not in averaged)
    after = model.state_dict()
    assert all(np.array_equal(after[k], own[k]) for k in own)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_by_global_norm(backend):
    be = get_backend(backend)
    a, b = be.to_device(np.array([3.0, 4.0])), be.to_device(np.array([12.0]))
    params = {"a": (None, a), "b": (None, b)}
    assert clip_by_global_norm(params, 20.0, be) == pytest.approx(13.0)
    assert_close(be.to_numpy(a), np.array([3.0, 4.0]), name="below the limit: unchanged")
    assert clip_by_global_norm(params, 6.5, be) == pytest.approx(13.0)
    assert_close(be.to_numpy(a), np.array([1.5, 2.0]), name="a scaled by 6.5 / 13")
    assert_close(be.to_numpy(b), np.array([6.0]), name="b scaled by 6.5 / 13")


@pytest.mark.parametrize("nesterov, decoupled", [(False, False), (True, True)])
def test_cpu_large_arrays_take_the_parallel_loop_with_the_same_bits(nesterov, decoupled, monkeypatch):
    from npxception.backends.cpu import optim
    rng = np.random.default_rng(4)
    p0, g = rng.standard_normal(3000).astype(np.float32), rng.standard_normal(3000).astype(np.float32)
    results = []
    for size in (10**12, 1):  # every array serial, then every array parallel
        monkeypatch.setattr(optim, "PARALLEL_SIZE", size)
        p, v, m, s = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
        for step in (1, 2):
            optim.sgd_update(p, g, v, 0.1, 0.9, nesterov, 1e-4)
            optim.adam_update(p, g, m, s, 1e-3, 0.9, 0.999, 1e-7, 1e-4, decoupled, step)
        results.append((p, v, m, s))
    for a, b in zip(*results):
        assert np.array_equal(a, b)
